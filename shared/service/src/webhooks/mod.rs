//! Job webhooks: `webhook` and `webhook_events_filter` on job creation, delivered as Standard
//! Webhooks (signed with FF_WEBHOOK_SECRET), to public https addresses only unless the operator
//! allowed a host (FF_WEBHOOK_ALLOWED_HOSTS).

pub mod delivery;
pub mod guard;
pub mod signing;
pub mod target;

pub use delivery::WebhookSender;
pub use guard::AllowedHosts;
pub use signing::WebhookSecret;
pub use target::{Webhook, WebhookDelivery, WebhookEvent};
