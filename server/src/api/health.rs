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
    /// The store answers and takes writes.
    #[oai(status = 200)]
    Ready(PlainText<&'static str>),
    /// The store does not answer, or cannot write.
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

    /// Readiness: the store answers reads and takes writes.
    ///
    /// 503 while a full disk or an I/O error keeps the store from writing;
    /// it recovers by itself once the disk takes writes again.
    #[oai(path = "/readyz", method = "get", operation_id = "readyz")]
    async fn readyz(&self, latch: Data<&Arc<Latch>>) -> Readiness {
        match latch.ready().await {
            Ok(()) => Readiness::Ready(PlainText("ready")),
            Err(why) => Readiness::NotReady(PlainText(why)),
        }
    }
}
