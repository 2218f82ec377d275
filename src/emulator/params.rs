//! Graph parameters: from the query string, an
//! `application/x-www-form-urlencoded` body, or a `multipart/form-data` body
//! (the API document's `curl -F 'access_token=…' …/me`).
//!
//! The first occurrence of a name wins; the query string is read first.

use actix_web::http::header::CONTENT_TYPE;
use actix_web::web::{Bytes, BytesMut, Payload};
use actix_web::HttpRequest;
use futures::StreamExt;

/// Largest body read, in bytes (Graph parameters are short).
pub(crate) const MAX_BODY: usize = 64 * 1024;

/// Request parameters in arrival order.
#[derive(Debug, Default)]
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    /// The first value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn extend_urlencoded(&mut self, bytes: &[u8]) {
        self.0.extend(
            url::form_urlencoded::parse(bytes).map(|(k, v)| (k.into_owned(), v.into_owned())),
        );
    }
}

/// Why the parameters could not be read.
#[derive(Debug)]
pub(crate) enum ParamsError {
    /// The body exceeded [`MAX_BODY`].
    TooLarge,
    /// The body was malformed (bad multipart, broken stream).
    Malformed(String),
}

fn content_type(req: &HttpRequest) -> String {
    req.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.to_ascii_lowercase())
        .unwrap_or_default()
}

async fn read_all(mut payload: Payload) -> Result<Bytes, ParamsError> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ParamsError::Malformed(e.to_string()))?;
        if buf.len() + chunk.len() > MAX_BODY {
            return Err(ParamsError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Reads the parameters of a request (query string, then body).
pub(crate) async fn read(req: &HttpRequest, payload: Payload) -> Result<Params, ParamsError> {
    let mut params = Params::default();
    params.extend_urlencoded(req.query_string().as_bytes());
    let ct = content_type(req);
    if ct.starts_with("application/x-www-form-urlencoded") {
        let body = read_all(payload).await?;
        params.extend_urlencoded(&body);
    } else if ct.starts_with("multipart/form-data") {
        read_multipart(req, payload, &mut params).await?;
    }
    Ok(params)
}

async fn read_multipart(
    req: &HttpRequest,
    payload: Payload,
    params: &mut Params,
) -> Result<(), ParamsError> {
    let mut multipart = actix_multipart::Multipart::new(req.headers(), payload);
    let mut total = 0usize;
    while let Some(field) = multipart.next().await {
        let mut field = field.map_err(|e| ParamsError::Malformed(e.to_string()))?;
        let name = field.name().map(str::to_owned);
        let mut value = Vec::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(|e| ParamsError::Malformed(e.to_string()))?;
            total += chunk.len();
            if total > MAX_BODY {
                return Err(ParamsError::TooLarge);
            }
            value.extend_from_slice(&chunk);
        }
        if let Some(name) = name {
            let value = String::from_utf8(value)
                .map_err(|_| ParamsError::Malformed(format!("field {name} is not UTF-8")))?;
            params.0.push((name, value));
        }
    }
    Ok(())
}
