//! Placeholders for the solver's field-model types in the OpenAPI document. Handlers
//! name them in their `#[utoipa::path]` (`request_body = TechnicianDoc`); the
//! composition root ([`crate::server::openapi`]) replaces each by the type's own JSON
//! Schema (schemars, the one `despacho schema problem` prints), so nothing is described
//! twice. They live down here so a handler need not import the root.

use std::borrow::Cow;
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

macro_rules! solver_schema_placeholder {
    ($placeholder:ident, $name:literal) => {
        #[doc = concat!("Stands for the solver's `", $name, "` in the OpenAPI document; replaced there by its JSON Schema.")]
        pub struct $placeholder;

        impl PartialSchema for $placeholder {
            fn schema() -> RefOr<Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .description(Some(concat!("See the solver's ", $name, " schema")))
                    .into()
            }
        }

        impl ToSchema for $placeholder {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
        }
    };
}

solver_schema_placeholder!(TechnicianDoc, "Technician");
solver_schema_placeholder!(JobInputDoc, "JobInput");
solver_schema_placeholder!(TravelOptionsDoc, "TravelOptions");
solver_schema_placeholder!(SlotRequestDoc, "SlotRequest");

/// Names of the solver types whose schemars schemas replace the placeholders.
pub const SOLVER_SCHEMAS: [&str; 4] = ["Technician", "JobInput", "TravelOptions", "SlotRequest"];
