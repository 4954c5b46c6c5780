//! The body of a signed application request must be the one it was signed
//! with: its header names the body's SHA-256 (covered by the signature, checked
//! in [`crate::auth`]), and this layer hashes the body as the handler reads it,
//! ending the read with an error if the two differ. Handlers act only on a body
//! read whole (JSON, the file list), so a swapped body is refused (400) before
//! anything is done with it.

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use futures::StreamExt;

pub async fn verify(request: Request, next: Next) -> Response {
    let claimed = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("OffsiteApp "))
        .and_then(|v| offsite_api::application_auth::parse_header(v).ok())
        .map(|header| header.body_sha256);
    let Some(claimed) = claimed else { return next.run(request).await };
    let (parts, body) = request.into_parts();
    let stream = body.into_data_stream();
    let checked = futures::stream::unfold(
        (stream, Some(ring::digest::Context::new(&ring::digest::SHA256)), claimed),
        |(mut stream, hasher, claimed)| async move {
            let mut hasher = hasher?;
            match stream.next().await {
                Some(Ok(bytes)) => {
                    hasher.update(&bytes);
                    Some((Ok(bytes), (stream, Some(hasher), claimed)))
                }
                Some(Err(err)) => Some((Err(std::io::Error::other(err)), (stream, None, claimed))),
                None => {
                    let actual = hex::encode(hasher.finish().as_ref());
                    if actual == claimed {
                        None
                    } else {
                        let err = std::io::Error::other(
                            "the request body is not the one its signature covers (its SHA-256 differs from the \
                             signed header's): refused",
                        );
                        Some((Err(err), (stream, None, claimed)))
                    }
                }
            }
        },
    );
    next.run(Request::from_parts(parts, Body::from_stream(checked))).await
}
