//! Ticket artefacts for people: a ticket's QR code (SVG) and an order's tickets
//! (PDF), and the pages the email worker attaches.
//!
//! It owns who may see them and what they say; the drawing is
//! `boxoffice-tickets-render`'s. Who: the order's buyer, admins, and whoever may
//! scan the event's tickets (its organizers, its assigned check-in staff). Anyone
//! else is told the ticket does not exist (404), as for the order itself. What:
//! only a paid or refunded order has tickets to show (a refunded one's say VOID);
//! any other is 409 `tickets_not_issued`.

use boxoffice_domain::{Order, OrderId, OrderStatus, TicketId};
use boxoffice_tickets_render::TicketPage;

use crate::{App, AppError, Principal};

impl App {
    /// `ticket`'s QR code as SVG.
    pub async fn ticket_qr(&self, who: &Principal, ticket: &str) -> Result<String, AppError> {
        let id = TicketId::parse(ticket).ok_or(AppError::NotFound)?;
        let order = self
            .store
            .ticket_order(&id)
            .await?
            .ok_or(AppError::NotFound)?;
        let order = self.order_for_artefacts(who, &order).await?;
        let t = order
            .tickets
            .iter()
            .find(|t| t.id == id)
            .ok_or(AppError::NotFound)?;
        Ok(boxoffice_tickets_render::qr_svg(&t.code))
    }

    /// The PDF of `order`'s tickets, one page each.
    pub async fn order_pdf(&self, who: &Principal, order: &str) -> Result<Vec<u8>, AppError> {
        let id = OrderId::parse(order).ok_or(AppError::NotFound)?;
        let order = self.order_for_artefacts(who, &id).await?;
        let pages = self.ticket_pages(&order).await?;
        Ok(boxoffice_tickets_render::tickets_pdf(&pages))
    }

    async fn order_for_artefacts(&self, who: &Principal, id: &OrderId) -> Result<Order, AppError> {
        let order = self.store.order(id).await?.ok_or(AppError::NotFound)?;
        if !who.may_see(&order.customer_id) && !self.may_scan(who, &order.event_id).await? {
            return Err(AppError::NotFound);
        }
        if !matches!(order.status, OrderStatus::Paid | OrderStatus::Refunded)
            || order.tickets.is_empty()
        {
            return Err(AppError::TicketsNotIssued);
        }
        Ok(order)
    }

    /// What each of `order`'s tickets' pages shows.
    pub(crate) async fn ticket_pages(&self, order: &Order) -> Result<Vec<TicketPage>, AppError> {
        let event = self.cached_event(&order.event_id).await?;
        let ev = event.event();
        let venue = self
            .store
            .venue(&ev.venue_id)
            .await?
            .map(|v| v.name)
            .unwrap_or_default();
        let date = ev
            .starts_at
            .format(time::macros::format_description!(
                "[weekday], [day padding:none] [month repr:long] [year], [hour]:[minute] UTC"
            ))
            .unwrap_or_default();
        let table = self.seat_table(&event).await?;
        let tier_name = |tier| {
            ev.tiers
                .iter()
                .find(|t| &t.id == tier)
                .map(|t| t.name.clone())
                .or_else(|| {
                    ev.ga_tiers
                        .iter()
                        .find(|t| &t.id == tier)
                        .map(|t| t.name.clone())
                })
                .unwrap_or_default()
        };
        Ok(order
            .tickets
            .iter()
            .map(|t| {
                let place = match t.seat_id.as_ref().and_then(|s| table.index.get(s)) {
                    Some(&i) => {
                        let seat = &table.layout[i as usize].seat;
                        format!(
                            "Section {}, row {}, seat {} ({})",
                            seat.section,
                            seat.row,
                            seat.label,
                            tier_name(&t.tier_id)
                        )
                    }
                    None => format!("General admission: {}", tier_name(&t.tier_id)),
                };
                TicketPage {
                    ticket_id: t.id.to_string(),
                    event: ev.name.clone(),
                    venue: venue.clone(),
                    date: date.clone(),
                    place,
                    buyer: order.email.clone(),
                    code: t.code.clone(),
                    void: order.tickets_void(),
                }
            })
            .collect())
    }
}
