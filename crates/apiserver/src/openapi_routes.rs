//! Serving the OpenAPI v3 documents (/openapi/v3 and /openapi/v3/<group-version>).

use apimachinery::ApiError;
use http::Response;

use crate::server::Body;
use crate::Api;

pub fn serve(api: &Api, rest: &[&str]) -> Result<Response<Body>, ApiError> {
    let _ = (api, rest);
    Err(ApiError::new(apimachinery::Reason::NotFound, "the server could not find the requested resource"))
}
