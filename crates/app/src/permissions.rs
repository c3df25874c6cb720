//! Who may do what: every permission check of the use cases, in one place. Roles
//! per organization (organizers, check-in staff, ops) will be added here; a use
//! case asks a question of the principal and never compares roles itself.
//!
//! Two answers: what a caller may not know exists is `NotFound` (someone else's
//! hold or order, a draft event), what it may see but not do is `Forbidden`.

use boxoffice_domain::{Order, Role, UserId};

use crate::{AppError, Principal};

impl Principal {
    /// Catalogue writes, operator views, the test gateway's charges.
    pub fn require_admin(&self) -> Result<(), AppError> {
        if self.role == Role::Admin {
            Ok(())
        } else {
            Err(AppError::Forbidden)
        }
    }

    /// May this caller see something owned by `owner` (a hold, an order)?
    pub fn may_see(&self, owner: &UserId) -> bool {
        self.role == Role::Admin || &self.user_id == owner
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

    /// Refunding `order` (whole or in part). Admins now; the event's organizer once
    /// organizations and roles exist.
    pub fn may_refund(&self, order: &Order) -> bool {
        let _ = order;
        self.role == Role::Admin
    }

    /// Events not yet published (drafts): readable by id, listed, shown with their
    /// seat maps. Admins now; an event's organizers once organizations exist.
    pub fn may_see_drafts(&self) -> bool {
        self.role == Role::Admin
    }
}

/// The same for a caller who may be anonymous.
pub fn may_see_drafts(who: Option<&Principal>) -> bool {
    who.is_some_and(Principal::may_see_drafts)
}
