//! Telling a client when its connection will not be reused.
//!
//! A handler may answer before it reads the request body (a refused upload:
//! wrong state, no permission, unknown job). hyper then closes the connection
//! once the response is out, but whether it also says `Connection: close` in
//! that response depends on timing. Without the header the client puts the
//! connection back in its pool, and its *next* request on it fails with
//! "connection closed before message completed". This layer watches the body
//! and, when the handler left some of it unread, says `Connection: close`
//! itself, so the client always opens a fresh connection.
//!
//! A handler that refuses an upload it has started, or before it starts, may
//! [`drain`] a bounded amount of the body first: a client still sending then hears
//! the answer instead of a broken pipe it would take for a service that went away.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::header::{HeaderValue, CONNECTION};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};

/// Reads and drops up to `limit` bytes of a request body the handler will not use
/// (see the module's documentation). A longer body is left unread, and its
/// connection closed by [`close_if_body_unread`].
pub async fn drain<E>(body: &mut (impl futures::Stream<Item = Result<Bytes, E>> + Unpin), limit: u64) {
    use futures::StreamExt;
    let mut left = limit;
    while left > 0 {
        match body.next().await {
            Some(Ok(chunk)) => left = left.saturating_sub(chunk.len() as u64),
            _ => break,
        }
    }
}

/// Middleware: adds `Connection: close` to the response when the request
/// body was not read to its end.
pub async fn close_if_body_unread(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let finished = Arc::new(AtomicBool::new(body.is_end_stream()));
    let watched = Body::new(WatchedBody { inner: body, finished: Arc::clone(&finished) });
    let mut response = next.run(Request::from_parts(parts, watched)).await;
    if !finished.load(Ordering::Acquire) {
        response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A request body that records when it has been read to the end.
struct WatchedBody {
    inner: Body,
    finished: Arc<AtomicBool>,
}

impl HttpBody for WatchedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.finished.store(true, Ordering::Release),
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => self.finished.store(true, Ordering::Release),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
