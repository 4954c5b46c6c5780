//! The portal's sign-in, session cookie and CSRF checks, over raw HTTPS (no
//! browser, so every status, header and cookie attribute can be seen), and the
//! rules for creating portal users.

mod common;

use std::time::Duration;

use common::Service;
use offsite_api::files::{VaultCredentials, XmlCredentialFile};
use offsite_api::types::CreatePortalUser;

const PASSWORD: &str = "a portal password long enough";

/// A client that does not follow redirects, so the sign-in answer's cookies show.
fn browser_like(service: &Service) -> reqwest::blocking::Client {
    let tls = offsite_api::tls::pinned_client_config(&service.server.fingerprint).expect("a pinned TLS config");
    reqwest::blocking::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .expect("an HTTP client")
}

struct Answer {
    status: u16,
    location: Option<String>,
    cookies: Vec<String>,
    csp: Option<String>,
    body: String,
}

fn answer(response: reqwest::blocking::Response) -> Answer {
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let (location, csp) = (header("location"), header("content-security-policy"));
    let cookies =
        response.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).map(str::to_string).collect();
    Answer { status: response.status().as_u16(), location, cookies, csp, body: response.text().unwrap_or_default() }
}

fn get(http: &reqwest::blocking::Client, service: &Service, path: &str, cookie: &str) -> Answer {
    answer(http.get(format!("{}{path}", service.server.url)).header("cookie", cookie).send().expect("an answer"))
}

fn post(
    http: &reqwest::blocking::Client,
    service: &Service,
    path: &str,
    cookie: &str,
    form: &[(&str, &str)],
) -> Answer {
    answer(
        http.post(format!("{}{path}", service.server.url))
            .header("cookie", cookie)
            .form(form)
            .send()
            .expect("an answer"),
    )
}

/// `name=value` of the cookie `name` set by an answer, with its attributes.
fn set_cookie<'a>(answer: &'a Answer, name: &str) -> Option<&'a str> {
    answer.cookies.iter().map(String::as_str).find(|c| c.starts_with(&format!("{name}=")))
}

fn pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap_or_default().to_string()
}

fn hidden_csrf(body: &str) -> String {
    let at = body.find("name=\"csrf\" value=\"").expect("a CSRF field") + "name=\"csrf\" value=\"".len();
    body[at..].split('"').next().unwrap_or_default().to_string()
}

#[test]
fn sign_in_sets_a_locked_down_session_that_pages_and_forms_require() {
    let service = Service::start();
    let a = service.tenant("a");
    let user = CreatePortalUser {
        email: "It@A.example".into(),
        password: PASSWORD.into(),
        subscription_id: Some(a.subscription_id.clone()),
    };
    service.operator().create_portal_user(&user).expect("the operator creates a portal user");
    let http = browser_like(&service);

    // Without a session every page sends the browser to sign in.
    let page = get(&http, &service, &format!("/portal/vaults/{}", a.vault_id), "");
    assert_eq!((page.status, page.location.as_deref()), (303, Some("/portal/sign-in")));

    let form = get(&http, &service, "/portal/sign-in", "");
    assert_eq!(form.status, 200);
    let sign_in_cookie = set_cookie(&form, "offsite_sign_in").expect("the sign-in form's cookie").to_string();
    for attribute in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/portal"] {
        assert!(sign_in_cookie.contains(attribute), "{sign_in_cookie} lacks {attribute}");
    }
    let token = hidden_csrf(&form.body);
    assert_eq!(pair(&sign_in_cookie), format!("offsite_sign_in={token}"));
    let cookie = pair(&sign_in_cookie);

    // A sign-in posted without the form's token (another site's form) is refused.
    let forged = post(
        &http,
        &service,
        "/portal/sign-in",
        "",
        &[("email", "it@a.example"), ("password", PASSWORD), ("csrf", &token)],
    );
    assert_eq!(forged.status, 403);
    assert!(set_cookie(&forged, "offsite_session").is_none());

    let wrong = post(
        &http,
        &service,
        "/portal/sign-in",
        &cookie,
        &[("email", "it@a.example"), ("password", "wrong password!"), ("csrf", &token)],
    );
    assert_eq!((wrong.status, wrong.location.as_deref()), (303, Some("/portal/sign-in?failed=true")));
    assert!(set_cookie(&wrong, "offsite_session").is_none());
    let nobody = post(
        &http,
        &service,
        "/portal/sign-in",
        &cookie,
        &[("email", "nobody@a.example"), ("password", PASSWORD), ("csrf", &token)],
    );
    assert_eq!(nobody.location, wrong.location, "an unknown address is answered as a wrong password");

    // The address is matched without regard to case.
    let signed = post(
        &http,
        &service,
        "/portal/sign-in",
        &cookie,
        &[("email", "IT@a.EXAMPLE"), ("password", PASSWORD), ("csrf", &token)],
    );
    assert_eq!((signed.status, signed.location.as_deref()), (303, Some("/portal/")));
    let session_cookie = set_cookie(&signed, "offsite_session").expect("a session cookie").to_string();
    for attribute in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/portal"] {
        assert!(session_cookie.contains(attribute), "{session_cookie} lacks {attribute}");
    }
    let session = pair(&session_cookie);

    let home = get(&http, &service, "/portal/", &session);
    assert_eq!(home.location, Some(format!("/portal/subscriptions/{}", a.subscription_id)));
    let vault = get(&http, &service, &format!("/portal/vaults/{}", a.vault_id), &session);
    assert_eq!(vault.status, 200, "{}", vault.body);
    assert!(vault.csp.as_deref().is_some_and(|c| c.contains("default-src 'none'")), "{:?}", vault.csp);
    let csrf = hidden_csrf(&vault.body);

    // Forms need the session's token; with it, the download is a working file.
    let credentials = format!("/portal/vaults/{}/credentials", a.vault_id);
    assert_eq!(post(&http, &service, &credentials, &session, &[("csrf", "0".repeat(64).as_str())]).status, 403);
    let download = post(&http, &service, &credentials, &session, &[("csrf", &csrf)]);
    assert_eq!(download.status, 200);
    let file = VaultCredentials::parse(&download.body).expect("a vault credentials file");
    assert_eq!(file.vault_id, a.vault_id);

    // A session cookie with a changed secret is no session.
    let (id, secret) = session.split_once('.').expect("<id>.<secret>");
    let tampered = format!("{id}.{}", secret.chars().rev().collect::<String>());
    assert_eq!(get(&http, &service, "/portal/", &tampered).location.as_deref(), Some("/portal/sign-in"));

    // Signing out ends the session on the service, not only in the browser.
    assert_eq!(post(&http, &service, "/portal/sign-out", &session, &[("csrf", &csrf)]).status, 303);
    assert_eq!(get(&http, &service, "/portal/", &session).location.as_deref(), Some("/portal/sign-in"));
}

#[test]
fn an_address_with_five_failed_sign_ins_waits_even_with_the_right_password() {
    let service = Service::start();
    let a = service.tenant("a");
    let user = |email: &str| CreatePortalUser {
        email: email.into(),
        password: PASSWORD.into(),
        subscription_id: Some(a.subscription_id.clone()),
    };
    service.operator().create_portal_user(&user("it@a.example")).unwrap();
    service.operator().create_portal_user(&user("other@a.example")).unwrap();
    let http = browser_like(&service);
    let form = get(&http, &service, "/portal/sign-in", "");
    let cookie = pair(set_cookie(&form, "offsite_sign_in").expect("the sign-in cookie"));
    let token = hidden_csrf(&form.body);
    let attempt = |email: &str, password: &str| {
        post(&http, &service, "/portal/sign-in", &cookie, &[("email", email), ("password", password), ("csrf", &token)])
    };
    for _ in 0..5 {
        assert_eq!(
            attempt("it@a.example", "a wrong password!").location.as_deref(),
            Some("/portal/sign-in?failed=true")
        );
    }
    let refused = attempt("it@a.example", PASSWORD);
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert!(refused.body.contains("too many failed sign-ins") && refused.body.contains("minute"), "{}", refused.body);
    assert!(set_cookie(&refused, "offsite_session").is_none());
    // Another address is not affected.
    assert_eq!(attempt("other@a.example", PASSWORD).location.as_deref(), Some("/portal/"));
}

#[test]
fn portal_users_need_an_address_a_long_password_and_a_real_subscription() {
    let service = Service::start();
    let a = service.tenant("a");
    let operator = service.operator();
    let user = |email: &str, password: &str, subscription: Option<&str>| CreatePortalUser {
        email: email.into(),
        password: password.into(),
        subscription_id: subscription.map(str::to_string),
    };
    let refused = |request: CreatePortalUser| {
        let err = operator.create_portal_user(&request).expect_err("refused");
        (err.status(), err.to_string())
    };
    let (status, message) = refused(user("it@a.example", "short", Some(&a.subscription_id)));
    assert!(status == Some(400) && message.contains("at least 12 characters"), "{message}");
    let (status, message) = refused(user("not an address", PASSWORD, Some(&a.subscription_id)));
    assert!(status == Some(400) && message.contains("not an email address"), "{message}");
    let (status, message) = refused(user("it@a.example", PASSWORD, Some("sub_nothere")));
    assert!(status == Some(404) && message.contains("sub_nothere"), "{message}");

    let made = operator.create_portal_user(&user("it@a.example", PASSWORD, Some(&a.subscription_id))).unwrap();
    assert_eq!(made.subscription_id.as_deref(), Some(a.subscription_id.as_str()));
    let (status, message) = refused(user("IT@a.example", PASSWORD, None));
    assert!(status == Some(409) && message.contains("it@a.example"), "{message}");

    // Subscriptions may not make users; the list never shows password hashes.
    let own = service.client(&a.subscription_token);
    assert_eq!(
        own.create_portal_user(&user("x@a.example", PASSWORD, Some(&a.subscription_id))).unwrap_err().status(),
        Some(403)
    );
    let listed = service.get_json("/api/v1/portal-users", &service.operator_token);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert!(!listed.to_string().contains("argon2"), "{listed}");
}
