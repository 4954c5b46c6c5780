//! E-mail over SMTP (lettre): the operator's relay, given as a URL
//! (`smtp://host:25` plain on a private network, `smtp://user:pass@host:587?tls=required`
//! with STARTTLS, `smtps://host:465`).

use lettre::message::header::ContentType;
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::{AsyncTransport, Message, Tokio1Executor};

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: lettre::message::Mailbox,
}

impl Mailer {
    /// The relay at `url`, sending as `from`.
    pub fn new(url: &str, from: &str) -> Result<Mailer, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| {
                format!("--smtp-url {url} is not an SMTP URL ({e}): e.g. smtp://mail.example.com:587?tls=required")
            })?
            .timeout(Some(std::time::Duration::from_secs(30)))
            .build();
        let from = from.parse().map_err(|e| format!("--smtp-from '{from}' is not an address ({e})"))?;
        Ok(Mailer { transport, from })
    }

    /// Sends one message; `body` is the event's JSON, shown whole under a line
    /// that says what it is.
    pub async fn send(&self, to: &str, subject: &str, body: &str) -> Result<(), String> {
        let pretty = serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| body.to_string());
        let text = format!("{subject}\n\nDetails:\n{pretty}\n\n-- \nThe offsite backup service\n");
        let message = Message::builder()
            .from(self.from.clone())
            .to(to.parse().map_err(|e| format!("'{to}' is not an address ({e})"))?)
            .subject(format!("[offsite] {subject}"))
            .header(ContentType::TEXT_PLAIN)
            .body(text)
            .map_err(|e| format!("cannot build the message: {e}"))?;
        self.transport.send(message).await.map(|_| ()).map_err(|e| format!("the SMTP relay refused or failed: {e}"))
    }
}
