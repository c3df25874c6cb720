//! "Best available N seats": which seats to offer a buyer who asks for a quantity
//! rather than naming seats. A pure choice over a seat map; holding the choice
//! (and choosing again when someone else was faster) is the app's.
//!
//! The rules, in order of preference (each level is tried only when the one before
//! has no choice at all):
//! 1. N adjacent seats in one row that leave no **orphan**: a single free seat
//!    between taken ones (a row's end counts as taken: one seat against a wall of
//!    people is as hard to sell);
//! 2. N adjacent seats in one row, orphans allowed;
//! 3. the N best free seats wherever they are (split across rows), whole runs first.
//!
//! "Best" is **nearest the stage**: the layout draws the stage above the seats, so
//! a row's distance is its `y` (smallest first); among rows at the same distance,
//! layout order (the venue's section order); within a row, the block whose middle
//! is nearest the row's middle (the centre view).

use crate::inventory::{SeatIx, AVAILABLE};

/// One row of seats as the picker sees it: layout indices ordered across the row
/// (by `x`), and its distance from the stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickRow {
    pub seats: Vec<SeatIx>,
    pub y: i32,
}

/// The rows of a layout, nearest the stage first.
#[derive(Debug, Clone, Default)]
pub struct PickRows {
    rows: Vec<PickRow>,
}

/// Which relaxation a choice came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PickLevel {
    Adjacent,
    AdjacentWithOrphan,
    Split,
}

impl PickLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            PickLevel::Adjacent => "adjacent",
            PickLevel::AdjacentWithOrphan => "adjacent_with_orphan",
            PickLevel::Split => "split",
        }
    }
}

impl PickRows {
    /// Rows from the layout: seats grouped by (section, row) in layout order, each
    /// row sorted by `x`, rows ranked by `y` then by where they first appear.
    pub fn new<'a>(seats: impl IntoIterator<Item = (&'a str, &'a str, i32, i32)>) -> Self {
        let mut index: std::collections::HashMap<(&str, &str), usize> = Default::default();
        let mut rows: Vec<(Vec<(i32, SeatIx)>, i32)> = Vec::new();
        for (ix, (section, row, x, y)) in seats.into_iter().enumerate() {
            let at = *index.entry((section, row)).or_insert_with(|| {
                rows.push((Vec::new(), y));
                rows.len() - 1
            });
            rows[at].0.push((x, ix as SeatIx));
            rows[at].1 = rows[at].1.min(y);
        }
        // Stable: rows at the same distance keep layout order.
        rows.sort_by_key(|(_, y)| *y);
        Self {
            rows: rows
                .into_iter()
                .map(|(mut s, y)| {
                    s.sort_by_key(|&(x, ix)| (x, ix));
                    PickRow {
                        seats: s.into_iter().map(|(_, ix)| ix).collect(),
                        y,
                    }
                })
                .collect(),
        }
    }

    pub fn rows(&self) -> &[PickRow] {
        &self.rows
    }

    /// Up to `window` candidate choices of `n` seats, best first, from the first
    /// level that has any; `eligible` says which seats may be offered at all (the
    /// asked tier). `status` is the live map (`A` free). Empty: no choice exists.
    pub fn candidates(
        &self,
        status: &[u8],
        eligible: impl Fn(SeatIx) -> bool,
        n: usize,
        window: usize,
    ) -> (Vec<Vec<SeatIx>>, PickLevel) {
        let free = |ix: SeatIx| status.get(ix as usize) == Some(&AVAILABLE) && eligible(ix);
        if n == 0 {
            return (Vec::new(), PickLevel::Adjacent);
        }
        for (level, orphans_ok) in [
            (PickLevel::Adjacent, false),
            (PickLevel::AdjacentWithOrphan, true),
        ] {
            let found = self.blocks(&free, n, window.max(1), orphans_ok);
            if !found.is_empty() {
                return (found, level);
            }
        }
        (self.split(&free, n).into_iter().collect(), PickLevel::Split)
    }

    /// Blocks of `n` adjacent free seats, row by row (nearest first), each row's
    /// nearest its middle first, until `window` are found.
    fn blocks(
        &self,
        free: &impl Fn(SeatIx) -> bool,
        n: usize,
        window: usize,
        orphans_ok: bool,
    ) -> Vec<Vec<SeatIx>> {
        let mut out = Vec::new();
        for row in &self.rows {
            let s = &row.seats;
            if s.len() < n {
                continue;
            }
            let f: Vec<bool> = s.iter().map(|&ix| free(ix)).collect();
            let is_free = |i: isize| i >= 0 && (i as usize) < f.len() && f[i as usize];
            let mut here: Vec<(usize, usize)> = Vec::new();
            let mut run = 0;
            for (i, &is) in f.iter().enumerate() {
                run = if is { run + 1 } else { 0 };
                if run < n {
                    continue;
                }
                let start = i + 1 - n;
                if !orphans_ok {
                    let (l, r) = (start as isize - 1, (i + 1) as isize);
                    // Judge the neighbours as they will be: the block taken.
                    let left_orphan = is_free(l) && !is_free(l - 1);
                    let right_orphan = is_free(r) && !is_free(r + 1);
                    if left_orphan || right_orphan {
                        continue;
                    }
                }
                // Twice the distance of the block's middle from the row's middle.
                let off = (2 * start + n) as isize - s.len() as isize;
                here.push((off.unsigned_abs(), start));
            }
            here.sort();
            for (_, start) in here {
                out.push(s[start..start + n].to_vec());
                if out.len() >= window {
                    return out;
                }
            }
        }
        out
    }

    /// The `n` best free seats across rows: in each row (nearest first) its longest
    /// free run nearest the middle, then the next, until `n` are taken.
    fn split(&self, free: &impl Fn(SeatIx) -> bool, n: usize) -> Option<Vec<SeatIx>> {
        let mut out = Vec::with_capacity(n);
        for row in &self.rows {
            let s = &row.seats;
            let mut runs: Vec<(usize, usize)> = Vec::new(); // (start, len)
            let mut i = 0;
            while i < s.len() {
                if free(s[i]) {
                    let start = i;
                    while i < s.len() && free(s[i]) {
                        i += 1;
                    }
                    runs.push((start, i - start));
                } else {
                    i += 1;
                }
            }
            runs.sort_by_key(|&(start, len)| {
                let off = (2 * start + len) as isize - s.len() as isize;
                (std::cmp::Reverse(len), off.unsigned_abs())
            });
            for (start, len) in runs {
                let take = len.min(n - out.len());
                out.extend_from_slice(&s[start..start + take]);
                if out.len() == n {
                    return Some(out);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One section of rows × seats, row r at y = r (row 0 nearest), seat c at x = c.
    fn grid(rows: usize, seats: usize) -> PickRows {
        let labels: Vec<String> = (0..rows).map(|r| r.to_string()).collect();
        let v: Vec<(&str, &str, i32, i32)> = (0..rows)
            .flat_map(|r| {
                let l = labels[r].as_str();
                (0..seats).map(move |c| ("A", l, c as i32, r as i32))
            })
            .collect();
        PickRows::new(v)
    }

    fn best(rows: &PickRows, status: &str, n: usize) -> (Option<Vec<SeatIx>>, PickLevel) {
        let (c, level) = rows.candidates(status.as_bytes(), |_| true, n, 1);
        (c.into_iter().next(), level)
    }

    #[test]
    fn nearest_row_then_the_middle() {
        let rows = grid(3, 10);
        let (got, level) = best(&rows, &"A".repeat(30), 2);
        assert_eq!(level, PickLevel::Adjacent);
        assert_eq!(got, Some(vec![4, 5]));
        let (got, _) = best(&rows, &"A".repeat(30), 3);
        // 3 in 10: the middles 3..6 and 4..7 are equally off; the left one first.
        assert_eq!(got, Some(vec![3, 4, 5]));
    }

    #[test]
    fn no_orphan_when_another_choice_exists() {
        let rows = grid(2, 6);
        // Row 0: seat 0 taken; A at 1..6. Two seats at 1,2 leave 3,4,5: fine; the
        // middle (2,3) would leave seat 1 alone between the taken 0 and 2.
        let status = "SAAAAA".to_owned() + "AAAAAA";
        let (got, level) = best(&rows, &status, 2);
        assert_eq!(level, PickLevel::Adjacent);
        let got = got.unwrap();
        assert_eq!(got.len(), 2);
        assert!(got[0] < 6, "row 0 still has a choice: {got:?}");
        let mut after = status.into_bytes();
        for &ix in &got {
            after[ix as usize] = b'H';
        }
        let row0 = &after[..6];
        for i in 0..6 {
            let taken = |j: isize| !(0..6).contains(&j) || row0[j as usize] != b'A';
            assert!(
                !(row0[i] == b'A' && taken(i as isize - 1) && taken(i as isize + 1)),
                "orphan at {i}: {:?}",
                std::str::from_utf8(row0)
            );
        }
    }

    #[test]
    fn an_orphan_is_allowed_when_nothing_else_fits_then_rows_split() {
        let rows = grid(2, 4);
        // Row 0: _ A A A with seat 0 taken: 2 seats at 1,2 leave 3 alone, at 2,3
        // leave 1 alone. Row 1 is full.
        let (got, level) = best(&rows, "SAAASSSS", 2);
        assert_eq!(level, PickLevel::AdjacentWithOrphan);
        assert_eq!(got.unwrap().len(), 2);

        // Three seats free, none adjacent in threes: split, whole runs first.
        let (got, level) = best(&rows, "ASAASSSA", 3);
        assert_eq!(level, PickLevel::Split);
        let mut got = got.unwrap();
        got.sort();
        assert_eq!(got, vec![0, 2, 3]);

        // Not enough free seats at all: no choice.
        let (got, _) = best(&rows, "ASSSSSSA", 3);
        assert_eq!(got, None);
    }

    #[test]
    fn rows_rank_by_distance_then_layout_order() {
        // Section B's row is nearer (y 0) although it comes later in the layout.
        let rows = PickRows::new(vec![
            ("A", "1", 0, 5),
            ("A", "1", 1, 5),
            ("B", "1", 0, 0),
            ("B", "1", 1, 0),
        ]);
        assert_eq!(rows.rows()[0].seats, vec![2, 3]);
        let (got, _) = best(&rows, "AAAA", 2);
        assert_eq!(got, Some(vec![2, 3]));
        // Seats listed out of x order are put in order across the row.
        let rows = PickRows::new(vec![("A", "1", 2, 0), ("A", "1", 0, 0), ("A", "1", 1, 0)]);
        assert_eq!(rows.rows()[0].seats, vec![1, 2, 0]);
    }

    #[test]
    fn the_window_offers_the_next_best_choices() {
        let rows = grid(2, 4);
        let (c, _) = rows.candidates("AAAAAAAA".as_bytes(), |_| true, 2, 4);
        // Row 0's blocks first, then row 1's; never the middle pair of four, which
        // would leave a seat alone at each end.
        assert_eq!(c, vec![vec![0, 1], vec![2, 3], vec![4, 5], vec![6, 7]]);
        // Only eligible seats (a tier) are offered.
        let (c, _) = rows.candidates("AAAAAAAA".as_bytes(), |ix| ix >= 4, 2, 1);
        assert_eq!(c[0], vec![4, 5]);
    }
}
