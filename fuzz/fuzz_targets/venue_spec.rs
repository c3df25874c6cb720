//! A venue specification as an organizer sends it: any bytes are refused or laid
//! out into a venue whose seats are consistent (count, positions, unique ids and
//! unique places), never a panic.
#![no_main]

use boxoffice_domain::venue::MAX_SEATS_PER_VENUE;
use boxoffice_domain::VenueSpec;
use libfuzzer_sys::fuzz_target;
use std::collections::HashSet;

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = serde_json::from_slice::<VenueSpec>(data) else {
        return;
    };
    let Ok((venue, seats)) = spec.build(time::OffsetDateTime::UNIX_EPOCH) else {
        return;
    };
    assert_eq!(venue.seat_count as usize, seats.len());
    assert!(!seats.is_empty() && seats.len() <= MAX_SEATS_PER_VENUE);
    let mut ids = HashSet::new();
    let mut places = HashSet::new();
    for (i, s) in seats.iter().enumerate() {
        assert_eq!(s.position as usize, i);
        assert!(ids.insert(s.id.clone()));
        assert!(places.insert((s.section.clone(), s.row.clone(), s.label.clone())));
        assert!(venue.sections.contains(&s.section));
    }
});
