//! `application/x-ndjson` bodies, one JSON value a line: the user import
//! reads one (spooled to a temporary file, since it is read twice) and
//! answers one (a line a result, each sent once its batch is durable).

use poem::{Body, FromRequest, IntoResponse, Request, RequestBody, Response};
use poem_openapi::payload::{ParsePayload, Payload};
use poem_openapi::registry::{MetaSchema, MetaSchemaRef};

/// The media type.
pub const NDJSON: &str = "application/x-ndjson";

fn schema() -> MetaSchemaRef {
    MetaSchemaRef::Inline(Box::new(MetaSchema { format: Some("binary"), ..MetaSchema::new("string") }))
}

/// An NDJSON request body, unread.
pub struct NdjsonBody(pub Body);

impl Payload for NdjsonBody {
    const CONTENT_TYPE: &'static str = NDJSON;

    fn check_content_type(content_type: &str) -> bool {
        content_type.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case(NDJSON))
    }

    fn schema_ref() -> MetaSchemaRef {
        schema()
    }
}

impl ParsePayload for NdjsonBody {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        Ok(NdjsonBody(Body::from_request(request, body).await?))
    }
}

/// An NDJSON answer, streamed.
pub struct NdjsonStream(pub Body);

impl Payload for NdjsonStream {
    const CONTENT_TYPE: &'static str = NDJSON;

    fn schema_ref() -> MetaSchemaRef {
        schema()
    }
}

impl IntoResponse for NdjsonStream {
    fn into_response(self) -> Response {
        Response::builder().content_type(NDJSON).body(self.0)
    }
}

// What poem-openapi's own payloads get from its (crate-private) macro: the
// body as an operation's request, in the document and when parsed.
impl<'a> poem_openapi::ApiExtractor<'a> for NdjsonBody {
    const TYPES: &'static [poem_openapi::ApiExtractorType] = &[poem_openapi::ApiExtractorType::RequestObject];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut poem_openapi::registry::Registry) {
        <Self as Payload>::register(registry);
    }

    fn request_meta() -> Option<poem_openapi::registry::MetaRequest> {
        Some(poem_openapi::registry::MetaRequest {
            description: None,
            content: vec![poem_openapi::registry::MetaMediaType {
                content_type: NDJSON,
                schema: <Self as Payload>::schema_ref(),
            }],
            required: true,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: poem_openapi::ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        match request.content_type() {
            Some(content_type) if Self::check_content_type(content_type) => {
                <Self as ParsePayload>::from_request(request, body).await
            }
            Some(content_type) => {
                Err(poem_openapi::error::ContentTypeError::NotSupported { content_type: content_type.to_string() }
                    .into())
            }
            None => Err(poem_openapi::error::ContentTypeError::ExpectContentType.into()),
        }
    }
}
