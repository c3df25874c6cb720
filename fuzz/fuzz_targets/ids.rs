//! Every id type, and the other strings parsed at the edge: any input is either
//! refused or parsed into a value that prints back as the canonical form of the
//! input (lower case) and parses again to itself.
#![no_main]

use boxoffice_domain::{
    Email, EventId, HoldId, InvitationId, OrderId, OrgId, RefundId, Role, SeatId, TicketId,
    TierId, UserId, VenueId, WaitlistId,
};
use libfuzzer_sys::fuzz_target;

macro_rules! round_trip {
    ($s:expr, $($t:ty),+) => {$(
        if let Ok(id) = <$t>::try_from($s) {
            let printed = id.to_string();
            assert_eq!(printed, $s.to_ascii_lowercase());
            assert_eq!(<$t>::try_from(printed.as_str()).unwrap(), id);
        }
    )+};
}

fuzz_target!(|s: &str| {
    round_trip!(s, UserId, VenueId, SeatId, EventId, TierId, HoldId, WaitlistId, OrgId, InvitationId);
    macro_rules! parse_round_trip {
        ($($t:ty),+) => {$(
            if let Some(id) = <$t>::parse(s) {
                assert_eq!(id.to_string(), s.to_ascii_lowercase());
                assert_eq!(<$t>::parse(id.as_str()).unwrap(), id);
            }
        )+};
    }
    parse_round_trip!(OrderId, TicketId, RefundId);
    if let Ok(e) = Email::parse(s) {
        assert_eq!(Email::parse(e.as_str()).unwrap(), e);
    }
    if let Some(r) = Role::parse(s) {
        assert_eq!(Role::parse(r.as_str()), Some(r));
    }
});
