//! Ticket artefacts, drawn from plain values: a ticket's code as a QR symbol in
//! SVG ([`qr_svg`]), and an order's tickets as a PDF, one A4 page per ticket
//! ([`tickets_pdf`]).
//!
//! It owns the drawing only: who may see a ticket, and what its code holds (after
//! issue 13's signed codes, a signed payload), are the app's. It knows no domain
//! type and no web framework, so the email worker and the HTTP routes draw the same
//! bytes.
//!
//! The PDF embeds no font: its text is set in Helvetica, one of the PDF's 14 base
//! fonts every reader has, in WinAnsiEncoding (so text beyond Latin-1 is shown as
//! `?`: the code itself is in the QR, never in the text alone). The QR code is
//! drawn as filled vector rectangles (one per run of dark modules in a row): it
//! stays sharp at any zoom and prints at any size, and a reader can take the
//! symbol back from the rectangles (see [`decode`], behind the `decode` feature).

#![forbid(unsafe_code)]

use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str};
use qrcode::{EcLevel, QrCode};

/// What one ticket's page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketPage {
    pub ticket_id: String,
    pub event: String,
    pub venue: String,
    /// The event's start, as the buyer should read it.
    pub date: String,
    /// "Section A, row 3, seat 12", or the tier for general admission.
    pub place: String,
    pub buyer: String,
    /// What the QR carries: the ticket's code, as the door scans it.
    pub code: String,
    /// A refunded or cancelled order's ticket: the page says it is not valid.
    pub void: bool,
}

/// The line a void ticket's page carries, in large type across it.
pub const VOID_NOTICE: &str = "VOID \u{2014} this ticket is not valid";

/// The QR symbol of `code`: medium error correction (a scuffed phone screen or a
/// crease in paper still scans), the smallest version that holds it.
fn symbol(code: &str) -> QrCode {
    QrCode::with_error_correction_level(code.as_bytes(), EcLevel::M)
        .or_else(|_| QrCode::with_error_correction_level(code.as_bytes(), EcLevel::L))
        // A code over a QR's capacity (about 2,300 bytes at level L) is a bug in
        // whatever made it; the empty symbol fails loudly at the door rather than here.
        .unwrap_or_else(|_| QrCode::new(b"").expect("the empty code fits"))
}

/// `code` as a standalone SVG document: 8 px per module, a 4-module quiet zone.
pub fn qr_svg(code: &str) -> String {
    symbol(code)
        .render::<qrcode::render::svg::Color<'_>>()
        .module_dimensions(8, 8)
        .quiet_zone(true)
        .build()
}

/// The dark modules of `code`'s symbol: its width and one flag per module, row
/// by row from the top.
pub fn qr_modules(code: &str) -> (usize, Vec<bool>) {
    let qr = symbol(code);
    let width = qr.width();
    let dark = qr
        .to_colors()
        .into_iter()
        .map(|c| c == qrcode::Color::Dark)
        .collect();
    (width, dark)
}

const PAGE_W: f32 = 595.0;
const PAGE_H: f32 = 842.0;
const MARGIN: f32 = 56.0;
/// The QR's side on the page, in points (about 7 cm).
const QR_SIDE: f32 = 200.0;

/// `text` in WinAnsiEncoding (the base-14 fonts' encoding): Latin-1 as is, the
/// few typographic marks Windows-1252 adds, anything else `?`.
fn win_ansi(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| match c {
            '\u{20}'..='\u{7e}' | '\u{a0}'..='\u{ff}' => c as u8,
            '\u{20ac}' => 0x80,
            '\u{2018}' => 0x91,
            '\u{2019}' => 0x92,
            '\u{201c}' => 0x93,
            '\u{201d}' => 0x94,
            '\u{2022}' => 0x95,
            '\u{2013}' => 0x96,
            '\u{2014}' => 0x97,
            _ => b'?',
        })
        .collect()
}

fn text(content: &mut Content, size: f32, x: f32, y: f32, line: &str) {
    let bytes = win_ansi(line);
    content
        .begin_text()
        .set_font(Name(b"F1"), size)
        .next_line(x, y)
        .show(Str(&bytes))
        .end_text();
}

/// The PDF of `pages`, one A4 page each, in order.
pub fn tickets_pdf(pages: &[TicketPage]) -> Vec<u8> {
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let font = Ref::new(3);
    let page_ids: Vec<Ref> = (0..pages.len())
        .map(|i| Ref::new(4 + 2 * i as i32))
        .collect();
    let mut pdf = Pdf::new();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree)
        .kids(page_ids.iter().copied())
        .count(pages.len() as i32);
    pdf.type1_font(font)
        .base_font(Name(b"Helvetica"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    for (page, &id) in pages.iter().zip(&page_ids) {
        let content_id = Ref::new(id.get() + 1);
        let mut p = pdf.page(id);
        p.parent(tree)
            .media_box(Rect::new(0.0, 0.0, PAGE_W, PAGE_H))
            .contents(content_id);
        p.resources().fonts().pair(Name(b"F1"), font);
        p.finish();
        pdf.stream(content_id, &page_content(page));
    }
    pdf.finish()
}

fn page_content(page: &TicketPage) -> Vec<u8> {
    let mut c = Content::new();
    let mut y = PAGE_H - MARGIN - 24.0;
    c.set_fill_gray(0.0);
    text(&mut c, 24.0, MARGIN, y, &page.event);
    y -= 30.0;
    for (size, line) in [
        (13.0, page.venue.as_str()),
        (13.0, page.date.as_str()),
        (16.0, page.place.as_str()),
    ] {
        text(&mut c, size, MARGIN, y, line);
        y -= 22.0;
    }
    text(
        &mut c,
        11.0,
        MARGIN,
        y,
        &format!("Ticket holder: {}", page.buyer),
    );
    y -= 18.0;
    text(
        &mut c,
        9.0,
        MARGIN,
        y,
        &format!("Ticket {}", page.ticket_id),
    );
    y -= 24.0;

    // The symbol with its 4-module quiet zone, the page's white around it.
    let (width, dark) = qr_modules(&page.code);
    let module = QR_SIDE / (width + 8) as f32;
    let left = MARGIN + 4.0 * module;
    let top = y - 4.0 * module;
    for row in 0..width {
        let mut col = 0;
        while col < width {
            if !dark[row * width + col] {
                col += 1;
                continue;
            }
            let start = col;
            while col < width && dark[row * width + col] {
                col += 1;
            }
            c.rect(
                left + start as f32 * module,
                top - (row + 1) as f32 * module,
                (col - start) as f32 * module,
                module,
            );
        }
    }
    c.fill_nonzero();
    y -= QR_SIDE + 20.0;
    text(
        &mut c,
        9.0,
        MARGIN,
        y,
        "Show this code at the door. One entry per ticket.",
    );

    if page.void {
        c.set_fill_rgb(0.8, 0.0, 0.0);
        text(&mut c, 22.0, MARGIN, y - 40.0, VOID_NOTICE);
    }
    c.finish().to_vec()
}

/// Readers of what this crate draws, for tests: a PDF back to its pages' text and
/// QR codes.
#[cfg(any(test, feature = "decode"))]
pub mod decode {
    /// One page as a reader sees it.
    #[derive(Debug, Clone)]
    pub struct ReadPage {
        /// The text shown, each string of a `Tj` as a line (WinAnsi taken as Latin-1).
        pub lines: Vec<String>,
        /// What its QR rectangles decode to (`None`: no symbol found or decoded).
        pub qr: Option<String>,
    }

    /// Parses `pdf` (an error for bytes that are not one) and reads each page.
    pub fn read_pdf(pdf: &[u8]) -> Result<Vec<ReadPage>, String> {
        let doc = lopdf::Document::load_mem(pdf).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for (_, page) in doc.get_pages() {
            let bytes = doc.get_page_content(page);
            let content = lopdf::content::Content::decode(&bytes).map_err(|e| e.to_string())?;
            let mut lines = Vec::new();
            let mut rects = Vec::new();
            for op in &content.operations {
                match op.operator.as_str() {
                    "Tj" => {
                        if let Some(Ok(s)) = op.operands.first().map(|o| o.as_str()) {
                            lines.push(s.iter().map(|&b| b as char).collect());
                        }
                    }
                    "re" => {
                        let v: Vec<f32> = op
                            .operands
                            .iter()
                            .filter_map(|o| o.as_float().ok())
                            .collect();
                        if let [x, y, w, h] = v[..] {
                            rects.push((x, y, w, h));
                        }
                    }
                    _ => {}
                }
            }
            out.push(ReadPage {
                lines,
                qr: decode_rects(&rects),
            });
        }
        Ok(out)
    }

    /// Rasterises filled rectangles (PDF space, y up) at 4 px per module, with a
    /// white margin, and looks for a QR symbol in the picture.
    pub fn decode_rects(rects: &[(f32, f32, f32, f32)]) -> Option<String> {
        let module = rects.iter().map(|r| r.3).fold(f32::INFINITY, f32::min);
        if rects.is_empty() || module <= 0.0 {
            return None;
        }
        let x0 = rects.iter().map(|r| r.0).fold(f32::INFINITY, f32::min);
        let y1 = rects
            .iter()
            .map(|r| r.1 + r.3)
            .fold(f32::NEG_INFINITY, f32::max);
        let cols = rects
            .iter()
            .map(|r| ((r.0 + r.2 - x0) / module).round() as usize)
            .max()?;
        let rows = rects
            .iter()
            .map(|r| ((y1 - r.1) / module).round() as usize)
            .max()?;
        let (scale, pad) = (4usize, 16usize);
        let (w, h) = (cols * scale + 2 * pad, rows * scale + 2 * pad);
        let mut px = vec![255u8; w * h];
        for &(x, y, rw, rh) in rects {
            let c0 = ((x - x0) / module).round() as usize;
            let c1 = ((x + rw - x0) / module).round() as usize;
            let r0 = ((y1 - (y + rh)) / module).round() as usize;
            let r1 = ((y1 - y) / module).round() as usize;
            for py in r0 * scale..r1 * scale {
                for qx in c0 * scale..c1 * scale {
                    px[(py + pad) * w + qx + pad] = 0;
                }
            }
        }
        decode_pixels(w, h, &px)
    }

    /// The first QR code rqrr finds in a greyscale picture.
    pub fn decode_pixels(w: usize, h: usize, px: &[u8]) -> Option<String> {
        let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| px[y * w + x]);
        img.detect_grids()
            .into_iter()
            .find_map(|g| g.decode().ok().map(|(_, s)| s))
    }

    /// Rasterises the SVG [`super::qr_svg`] draws (its one path of `M x y h w v h H x V y`
    /// squares) and decodes it.
    pub fn decode_svg(svg: &str) -> Option<String> {
        let d = svg.split(" d=\"").nth(1)?.split('"').next()?;
        let mut rects = Vec::new();
        for part in d.split('M').filter(|p| !p.is_empty()) {
            // "x y" "hW" "vH" ...: the start, then the width and height.
            let nums: Vec<f32> = part
                .split(|c: char| c == ' ' || c.is_ascii_alphabetic())
                .filter(|s| !s.is_empty())
                .filter_map(|s| s.parse().ok())
                .collect();
            if let [x, y, w, h, ..] = nums[..] {
                // SVG space is y down: flip to the PDF's y up.
                rects.push((x, -(y + h), w, h));
            }
        }
        decode_rects(&rects)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(code: &str, void: bool) -> TicketPage {
        TicketPage {
            ticket_id: "tkt_1".into(),
            event: "Caf\u{e9} Concert \u{2014} Night".into(),
            venue: "Main Hall".into(),
            date: "2027-01-01 20:00 UTC".into(),
            place: "Section A, row 3, seat 12".into(),
            buyer: "buyer@example.com".into(),
            code: code.into(),
            void,
        }
    }

    #[test]
    fn win_ansi_keeps_latin1_and_dashes() {
        assert_eq!(win_ansi("Caf\u{e9} \u{2014} \u{4e2d}"), b"Caf\xe9 \x97 ?");
    }

    #[test]
    fn the_svg_is_a_qr_of_the_code() {
        let code = "KQ3V7EXAMPLE0CODE2ZZ5TQ4FM";
        let svg = qr_svg(code);
        assert!(svg.contains("<svg") && svg.ends_with("</svg>"));
        assert_eq!(decode::decode_svg(&svg).as_deref(), Some(code));
    }

    #[test]
    fn each_ticket_is_a_page_whose_qr_decodes_to_its_code() {
        let long = "bo1.".to_owned() + &"A".repeat(120);
        let pdf = tickets_pdf(&[page("FIRSTCODE123", false), page(&long, true)]);
        assert!(pdf.starts_with(b"%PDF-"));
        let pages = decode::read_pdf(&pdf).unwrap();
        assert_eq!(pages.len(), 2);
        assert_eq!(pages[0].qr.as_deref(), Some("FIRSTCODE123"));
        assert_eq!(pages[1].qr.as_deref(), Some(long.as_str()));
        let first = pages[0].lines.join("\n");
        for want in [
            "Caf\u{e9} Concert \u{97} Night",
            "Main Hall",
            "2027-01-01 20:00 UTC",
            "Section A, row 3, seat 12",
            "buyer@example.com",
        ] {
            assert!(first.contains(want), "{want:?} not in {first:?}");
        }
        assert!(!first.contains("VOID"));
        assert!(pages[1]
            .lines
            .iter()
            .any(|l| l == "VOID \u{97} this ticket is not valid"));
    }

    #[test]
    fn the_font_is_the_base_14_helvetica_and_nothing_is_embedded() {
        let pdf = tickets_pdf(&[page("X", false)]);
        let doc = lopdf::Document::load_mem(&pdf).unwrap();
        let fonts: Vec<_> = doc
            .objects
            .values()
            .filter_map(|o| o.as_dict().ok())
            .filter(|d| d.get(b"Type").and_then(|t| t.as_name()).ok() == Some(b"Font"))
            .collect();
        assert_eq!(fonts.len(), 1);
        assert_eq!(
            fonts[0].get(b"BaseFont").unwrap().as_name().unwrap(),
            b"Helvetica"
        );
        assert!(fonts[0].get(b"FontDescriptor").is_err());
    }
}
