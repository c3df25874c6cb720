//! Venues and seat maps: sections of rows of seats, each with a stable id, a human
//! label and x/y coordinates for drawing. A venue's seat order (sections in the order
//! given, rows in order, seats in order) is the basis of every event's layout order.

use serde::Deserialize;
use std::collections::HashSet;
use time::OffsetDateTime;

use crate::{SeatId, ValidationError, VenueId};

/// Most seats one venue may have: a large stadium, with room to spare.
pub const MAX_SEATS_PER_VENUE: usize = 200_000;
/// Distance between neighbouring seats, in layout units.
pub const SEAT_PITCH: i32 = 10;
const SECTION_GAP: i32 = 40;
const SECTIONS_PER_BAND: usize = 4;

/// What an organizer sends to create a venue.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VenueSpec {
    pub name: String,
    pub sections: Vec<SectionSpec>,
    /// The owning organization: an admin's choice (default: the default
    /// organization); an organizer's venue is always their own organization's.
    #[serde(default)]
    pub org_id: Option<crate::OrgId>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SectionSpec {
    pub name: String,
    /// Either a count of rows (with `seats_per_row`), or the rows spelled out.
    pub rows: RowsSpec,
    #[serde(default)]
    pub seats_per_row: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RowsSpec {
    Count(u32),
    Explicit(Vec<RowSpec>),
}

/// One row spelled out: its label and its seats' labels, in order.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RowSpec {
    pub label: String,
    pub seats: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Venue {
    pub id: VenueId,
    pub name: String,
    /// Section names in the order given.
    pub sections: Vec<String>,
    pub seat_count: u32,
    pub created_at: OffsetDateTime,
    /// The organization that owns it (its organizers manage it and its events).
    pub org_id: crate::OrgId,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seat {
    pub id: SeatId,
    /// Place in the venue's seat order, from 0.
    pub position: u32,
    pub section: String,
    pub row: String,
    pub label: String,
    pub x: i32,
    pub y: i32,
}

fn check_name(field: &str, s: &str, max: usize) -> Result<String, ValidationError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if t.chars().count() > max || t.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            format!("must be at most {max} printable characters"),
        ));
    }
    Ok(t.to_owned())
}

impl VenueSpec {
    /// Validates the spec and lays out its seats, each with a fresh id.
    pub fn build(&self, now: OffsetDateTime) -> Result<(Venue, Vec<Seat>), ValidationError> {
        let name = check_name("name", &self.name, 200)?;
        if self.sections.is_empty() {
            return Err(ValidationError::new("sections", "at least one section"));
        }
        let mut names = HashSet::new();
        let mut seats = Vec::new();
        let mut section_names = Vec::new();
        let (mut band_x, mut band_y, mut band_height) = (0i32, 0i32, 0i32);
        for (si, section) in self.sections.iter().enumerate() {
            let field = format!("sections[{si}]");
            let sname = check_name(&format!("{field}.name"), &section.name, 50)?;
            if !names.insert(sname.clone()) {
                return Err(ValidationError::new(
                    format!("{field}.name"),
                    "section names must be unique",
                ));
            }
            let rows: Vec<(String, Vec<String>)> = match &section.rows {
                RowsSpec::Count(n) => {
                    let per_row = section.seats_per_row.ok_or_else(|| {
                        ValidationError::new(
                            format!("{field}.seats_per_row"),
                            "required when rows is a number",
                        )
                    })?;
                    if *n == 0 || per_row == 0 {
                        return Err(ValidationError::new(
                            field,
                            "rows and seats_per_row must be positive",
                        ));
                    }
                    if u64::from(*n) * u64::from(per_row) > MAX_SEATS_PER_VENUE as u64 {
                        return Err(ValidationError::new(field, "too many seats"));
                    }
                    (1..=*n)
                        .map(|r| {
                            (
                                r.to_string(),
                                (1..=per_row).map(|s| s.to_string()).collect(),
                            )
                        })
                        .collect()
                }
                RowsSpec::Explicit(rows) => {
                    if section.seats_per_row.is_some() {
                        return Err(ValidationError::new(
                            format!("{field}.seats_per_row"),
                            "not allowed when rows are spelled out",
                        ));
                    }
                    if rows.is_empty() {
                        return Err(ValidationError::new(field, "at least one row"));
                    }
                    let mut row_labels = HashSet::new();
                    let mut out = Vec::with_capacity(rows.len());
                    for (ri, row) in rows.iter().enumerate() {
                        let rf = format!("{field}.rows[{ri}]");
                        let label = check_name(&format!("{rf}.label"), &row.label, 20)?;
                        if !row_labels.insert(label.clone()) {
                            return Err(ValidationError::new(rf, "row labels must be unique"));
                        }
                        if row.seats.is_empty() {
                            return Err(ValidationError::new(rf, "at least one seat"));
                        }
                        let mut seat_labels = HashSet::new();
                        let mut labels = Vec::with_capacity(row.seats.len());
                        for s in &row.seats {
                            let l = check_name(&format!("{rf}.seats"), s, 20)?;
                            if !seat_labels.insert(l.clone()) {
                                return Err(ValidationError::new(
                                    format!("{rf}.seats"),
                                    "seat labels must be unique in a row",
                                ));
                            }
                            labels.push(l);
                        }
                        out.push((label, labels));
                    }
                    out
                }
            };
            let width = rows.iter().map(|(_, s)| s.len()).max().unwrap_or(0) as i32 * SEAT_PITCH;
            let height = rows.len() as i32 * SEAT_PITCH;
            if si > 0 && si % SECTIONS_PER_BAND == 0 {
                band_x = 0;
                band_y += band_height + SECTION_GAP;
                band_height = 0;
            }
            for (ri, (row, labels)) in rows.into_iter().enumerate() {
                for (ci, label) in labels.into_iter().enumerate() {
                    if seats.len() >= MAX_SEATS_PER_VENUE {
                        return Err(ValidationError::new(
                            "sections",
                            format!("at most {MAX_SEATS_PER_VENUE} seats per venue"),
                        ));
                    }
                    seats.push(Seat {
                        id: SeatId::new(),
                        position: seats.len() as u32,
                        section: sname.clone(),
                        row: row.clone(),
                        label,
                        x: band_x + ci as i32 * SEAT_PITCH,
                        y: band_y + ri as i32 * SEAT_PITCH,
                    });
                }
            }
            band_x += width + SECTION_GAP;
            band_height = band_height.max(height);
            section_names.push(sname);
        }
        let venue = Venue {
            id: VenueId::new(),
            name,
            sections: section_names,
            seat_count: seats.len() as u32,
            created_at: now,
            // The caller's organization replaces it (`App::create_venue`).
            org_id: crate::OrgId::default_org(),
        };
        Ok((venue, seats))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> VenueSpec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn grid_sections_lay_out_in_order() {
        let (venue, seats) = spec(
            r#"{"name":"Hall","sections":[{"name":"A","rows":2,"seats_per_row":3},{"name":"B","rows":1,"seats_per_row":2}]}"#,
        )
        .build(OffsetDateTime::UNIX_EPOCH)
        .unwrap();
        assert_eq!(venue.seat_count, 8);
        assert_eq!(venue.sections, ["A", "B"]);
        let labels: Vec<_> = seats
            .iter()
            .map(|s| format!("{}-{}-{}", s.section, s.row, s.label))
            .collect();
        assert_eq!(
            labels,
            ["A-1-1", "A-1-2", "A-1-3", "A-2-1", "A-2-2", "A-2-3", "B-1-1", "B-1-2"]
        );
        assert!(seats
            .iter()
            .enumerate()
            .all(|(i, s)| s.position == i as u32));
        // Seats do not overlap on the drawing.
        let mut xy: Vec<_> = seats.iter().map(|s| (s.x, s.y)).collect();
        xy.sort();
        xy.dedup();
        assert_eq!(xy.len(), seats.len());
    }

    #[test]
    fn explicit_rows() {
        let (_, seats) = spec(
            r#"{"name":"Club","sections":[{"name":"Balcony","rows":[{"label":"AA","seats":["1","2"]},{"label":"BB","seats":["7"]}]}]}"#,
        )
        .build(OffsetDateTime::UNIX_EPOCH)
        .unwrap();
        assert_eq!(seats.len(), 3);
        assert_eq!(seats[2].row, "BB");
        assert_eq!(seats[2].label, "7");
    }

    #[test]
    fn rejects_bad_specs() {
        for bad in [
            r#"{"name":"","sections":[{"name":"A","rows":1,"seats_per_row":1}]}"#,
            r#"{"name":"x","sections":[]}"#,
            r#"{"name":"x","sections":[{"name":"A","rows":0,"seats_per_row":1}]}"#,
            r#"{"name":"x","sections":[{"name":"A","rows":1}]}"#,
            r#"{"name":"x","sections":[{"name":"A","rows":1,"seats_per_row":1},{"name":"A","rows":1,"seats_per_row":1}]}"#,
            r#"{"name":"x","sections":[{"name":"A","rows":1000,"seats_per_row":1000}]}"#,
            r#"{"name":"x","sections":[{"name":"A","rows":[{"label":"1","seats":["1","1"]}]}]}"#,
        ] {
            assert!(
                spec(bad).build(OffsetDateTime::UNIX_EPOCH).is_err(),
                "{bad}"
            );
        }
    }
}
