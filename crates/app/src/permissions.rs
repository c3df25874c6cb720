//! Who may do what: every permission check of the use cases, in one place. A use
//! case asks a question of the principal and never compares roles itself.
//!
//! Roles (`docs/security.md` has the table): customers act on their own holds and
//! orders; organizers manage their organization's venues, events (drafts
//! included), orders (read), refunds and sales; check-in staff scan the tickets
//! of the events they are assigned to; ops read the operator views and write
//! nothing; admins do everything.
//!
//! Two answers: what a caller may not know exists is `NotFound` (someone else's
//! hold or order, another organization's draft), what it may see but not do is
//! `Forbidden`.

use boxoffice_domain::{Event, EventStatus, Order, OrgId, Role, UserId, Venue};

use crate::{AppError, Principal};

impl Principal {
    fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// An organizer of `org`.
    fn organizes(&self, org: &OrgId) -> bool {
        self.role == Role::Organizer && self.org.as_ref() == Some(org)
    }

    /// Creating organizations, inviting ops and admins, revoking a user's
    /// sessions, the test gateway's charges.
    pub fn require_admin(&self) -> Result<(), AppError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(AppError::Forbidden)
        }
    }

    /// Whether this caller may write to the catalogue at all (some venue or
    /// event): decided from the token alone, before a request's body is read.
    pub fn may_write_catalogue(&self) -> bool {
        self.is_admin() || (self.role == Role::Organizer && self.org.is_some())
    }

    pub fn require_catalogue_writer(&self) -> Result<(), AppError> {
        if self.may_write_catalogue() {
            Ok(())
        } else {
            Err(AppError::Forbidden)
        }
    }

    /// The organization a venue this caller creates belongs to: an organizer's
    /// own; an admin's choice (`asked`), or the default organization.
    pub fn org_for_new_venue(&self, asked: Option<OrgId>) -> Result<OrgId, AppError> {
        match (self.is_admin(), &self.org, asked) {
            (true, _, Some(org)) => Ok(org),
            (true, _, None) => Ok(OrgId::default_org()),
            (false, Some(own), None) if self.may_write_catalogue() => Ok(own.clone()),
            (false, Some(own), Some(org)) if self.may_write_catalogue() && &org == own => Ok(org),
            _ => Err(AppError::Forbidden),
        }
    }

    /// Listing venues (with their organizations): catalogue writers and ops.
    pub fn may_list_venues(&self) -> bool {
        self.may_write_catalogue() || self.role == Role::Ops
    }

    /// Which venues a listing shows this caller.
    pub fn may_see_venue_listed(&self, venue: &Venue) -> bool {
        self.is_admin() || self.role == Role::Ops || self.organizes(&venue.org_id)
    }

    /// Creating events at `venue` (venues are public: another organization's is
    /// 403, not 404).
    pub fn require_manage_venue(&self, venue: &Venue) -> Result<(), AppError> {
        if self.is_admin() || self.organizes(&venue.org_id) {
            Ok(())
        } else {
            Err(AppError::Forbidden)
        }
    }

    /// Whether this caller may know `event` exists: published ones for everyone,
    /// drafts for their organization's organizers and admins.
    pub fn may_see_event(&self, event: &Event) -> bool {
        event.status != EventStatus::Draft || self.is_admin() || self.organizes(&event.org_id)
    }

    /// Changing `event` (status, details, limits, waiting room, cancelling it,
    /// assigning its staff): its organizers and admins. 404 for a draft this
    /// caller may not know, 403 for a published one.
    pub fn require_manage_event(&self, event: &Event) -> Result<(), AppError> {
        if self.is_admin() || self.organizes(&event.org_id) {
            Ok(())
        } else if self.may_see_event(event) {
            Err(AppError::Forbidden)
        } else {
            Err(AppError::NotFound)
        }
    }

    /// Sales figures of `event`: its organizers, ops and admins.
    pub fn require_sales_view(&self, event: &Event) -> Result<(), AppError> {
        if self.is_admin() || self.role == Role::Ops || self.organizes(&event.org_id) {
            Ok(())
        } else if self.may_see_event(event) {
            Err(AppError::Forbidden)
        } else {
            Err(AppError::NotFound)
        }
    }

    /// The audit log: admins, and ops (read-only, as everything they see).
    pub fn require_audit_read(&self) -> Result<(), AppError> {
        if self.is_admin() || self.role == Role::Ops {
            Ok(())
        } else {
            Err(AppError::Forbidden)
        }
    }

    /// The hold engine's audit (an operator view): ops and admins.
    pub fn require_operator_view(&self, event: &Event) -> Result<(), AppError> {
        if self.is_admin() || self.role == Role::Ops {
            Ok(())
        } else if self.may_see_event(event) {
            Err(AppError::Forbidden)
        } else {
            Err(AppError::NotFound)
        }
    }

    /// May this caller see something owned by `owner` (a hold)?
    pub fn may_see(&self, owner: &UserId) -> bool {
        self.is_admin() || &self.user_id == owner
    }

    /// May this caller read `order` of an event owned by `event_org`: its buyer,
    /// the event's organizers, admins.
    pub fn may_see_order(&self, order: &Order, event_org: &OrgId) -> bool {
        self.may_see(&order.customer_id) || self.organizes(event_org)
    }

    /// Acting with something owned by `owner` (checking a hold out, which charges
    /// the caller's payment token and makes the order theirs): its owner only.
    /// Whoever may see it but is not its owner is refused.
    pub fn require_owner(&self, owner: &UserId) -> Result<(), AppError> {
        if &self.user_id == owner {
            Ok(())
        } else {
            Err(AppError::OwnerOnly)
        }
    }

    /// Refunding `order` (whole or in part) of an event owned by `event_org`:
    /// admins and the event's organizers. 404 for who may not see the order.
    pub fn require_refund(&self, order: &Order, event_org: &OrgId) -> Result<(), AppError> {
        if self.is_admin() || self.organizes(event_org) {
            Ok(())
        } else if self.may_see_order(order, event_org) {
            Err(AppError::Forbidden)
        } else {
            Err(AppError::NotFound)
        }
    }

    /// Whether drafts may be among what this caller lists (each one then asks
    /// [`Principal::may_see_event`]).
    pub fn may_see_drafts(&self) -> bool {
        self.is_admin() || (self.role == Role::Organizer && self.org.is_some())
    }

    /// Reading organization `org`: its organizers and check-in staff, ops and
    /// admins; anyone else may not know it exists.
    pub fn require_see_org(&self, org: &OrgId) -> Result<(), AppError> {
        let member = self.role.has_org() && self.org.as_ref() == Some(org);
        if self.is_admin() || self.role == Role::Ops || member {
            Ok(())
        } else {
            Err(AppError::NotFound)
        }
    }

    /// Inviting someone to `org` as `role`: admins any staff role; the
    /// organization's organizers its organizers and check-in staff.
    pub fn require_invite(&self, org: &OrgId, role: Role) -> Result<(), AppError> {
        self.require_see_org(org)?;
        let allowed = match role {
            Role::Customer => false,
            Role::Organizer | Role::Checkin => self.is_admin() || self.organizes(org),
            Role::Ops | Role::Admin => self.is_admin(),
        };
        if allowed {
            Ok(())
        } else {
            Err(AppError::Forbidden)
        }
    }

    /// Scanning tickets of `event` (the check-in endpoint of issue 13 asks this):
    /// admins, the event's organizers, and check-in staff of its organization
    /// assigned to it (`assigned`, from the store).
    pub fn may_scan(&self, event: &Event, assigned: bool) -> bool {
        self.is_admin()
            || self.organizes(&event.org_id)
            || (self.role == Role::Checkin && self.org.as_ref() == Some(&event.org_id) && assigned)
    }

    /// Whether this caller's scans depend on an assignment (so the store must be
    /// asked): check-in staff only.
    pub fn scans_by_assignment(&self) -> bool {
        self.role == Role::Checkin
    }
}

/// Whether drafts may be among what a caller who may be anonymous lists.
pub fn may_see_drafts(who: Option<&Principal>) -> bool {
    who.is_some_and(Principal::may_see_drafts)
}

/// Whether a caller who may be anonymous may know `event` exists.
pub fn may_see_event(who: Option<&Principal>, event: &Event) -> bool {
    match who {
        Some(p) => p.may_see_event(event),
        None => event.status != EventStatus::Draft,
    }
}

/// Whether `user` (role, organization) may be assigned to scan `event`.
pub fn assignable_staff(role: Role, org: Option<&OrgId>, event: &Event) -> bool {
    role == Role::Checkin && org == Some(&event.org_id)
}
