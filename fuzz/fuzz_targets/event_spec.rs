//! An event specification against a small venue: refused, or an event whose
//! seats are the venue's, each once, with a tier of the event.
#![no_main]

use boxoffice_domain::{NewEvent, VenueSpec};
use libfuzzer_sys::fuzz_target;
use std::collections::HashSet;
use std::sync::OnceLock;

fn venue() -> &'static (boxoffice_domain::Venue, Vec<boxoffice_domain::Seat>) {
    static V: OnceLock<(boxoffice_domain::Venue, Vec<boxoffice_domain::Seat>)> = OnceLock::new();
    V.get_or_init(|| {
        let spec: VenueSpec = serde_json::from_str(
            r#"{"name":"Hall","sections":[{"name":"A","rows":3,"seats_per_row":4},
                {"name":"B","rows":[{"label":"1","seats":["1","2"]}]}]}"#,
        )
        .unwrap();
        spec.build(time::OffsetDateTime::UNIX_EPOCH).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(mut new) = serde_json::from_slice::<NewEvent>(data) else {
        return;
    };
    let (venue, seats) = venue();
    new.venue_id = venue.id.clone();
    let Ok((event, event_seats)) = new.build(venue, seats, time::OffsetDateTime::UNIX_EPOCH) else {
        return;
    };
    let mut seen = HashSet::new();
    for s in &event_seats {
        assert!(seen.insert(s.seat_id.clone()), "a seat twice");
        assert!(seats.iter().any(|v| v.id == s.seat_id));
        assert!(event.tiers.iter().any(|t| t.id == s.tier_id));
    }
});
