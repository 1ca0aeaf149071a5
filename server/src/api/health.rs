//! Liveness and readiness.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::payload::PlainText;
use poem_openapi::{ApiResponse, OpenApi};

use super::ApiTags;
use crate::domain::Latch;

/// Health probes.
pub struct HealthApi;

/// Readiness.
#[derive(ApiResponse)]
pub enum Readiness {
    /// The store answers.
    #[oai(status = 200)]
    Ready(PlainText<&'static str>),
    /// The store does not answer.
    #[oai(status = 503)]
    NotReady(PlainText<&'static str>),
}

#[OpenApi(tag = "ApiTags::Health")]
impl HealthApi {
    /// Liveness: the process serves HTTP.
    #[oai(path = "/healthz", method = "get", operation_id = "healthz")]
    async fn healthz(&self) -> PlainText<&'static str> {
        PlainText("ok")
    }

    /// Readiness: the store is open and answers reads.
    #[oai(path = "/readyz", method = "get", operation_id = "readyz")]
    async fn readyz(&self, latch: Data<&Arc<Latch>>) -> Readiness {
        match latch.store().run(|store| store.get_meta(crate::store::sled::FORMAT_KEY)).await {
            Ok(Some(_)) => Readiness::Ready(PlainText("ready")),
            _ => Readiness::NotReady(PlainText("store unavailable")),
        }
    }
}
