//! The portal's sign-in, session cookie and CSRF checks, over raw HTTPS (no
//! browser, so every status, header and cookie attribute can be seen), and the
//! rules for creating portal users.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::{Body, Service};
use offsite_api::files::{VaultCredentials, XmlCredentialFile};
use offsite_api::types::CreatePortalUser;

const PASSWORD: &str = "a portal password long enough";

/// A portal user of `tenant`'s subscription, with the tests' password.
fn add_portal_user(service: &Service, tenant: &common::Tenant, email: &str) {
    let user = CreatePortalUser {
        email: email.into(),
        password: PASSWORD.into(),
        subscription_id: Some(tenant.subscription_id.clone()),
    };
    service.operator().create_portal_user(&user).expect("the operator creates a portal user");
}

/// A client that does not follow redirects, so the sign-in answer's cookies show.
fn browser_like(service: &Service) -> reqwest::blocking::Client {
    browser_from(service, IpAddr::from([127, 0, 0, 1]))
}

/// The same, its connections coming from `source` (a loopback address: the
/// service on 127.0.0.1 sees 127.0.0.2 as another computer).
fn browser_from(service: &Service, source: IpAddr) -> reqwest::blocking::Client {
    let tls = offsite_api::tls::pinned_client_config(&service.server.fingerprint).expect("a pinned TLS config");
    reqwest::blocking::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .local_address(source)
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
    add_portal_user(&service, &a, "It@A.example");
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

/// The Argon2 password checks of portal sign-ins this service has run, from its
/// `/metrics`.
fn password_checks(service: &Service) -> u64 {
    let scrape = service.call("GET", "/metrics", Some(&service.operator_token), &Body::Empty);
    assert_eq!(scrape.status, 200, "/metrics: {}", scrape.text());
    let text = scrape.text();
    let line = text
        .lines()
        .find(|l| l.starts_with("offsite_portal_password_checks_total "))
        .unwrap_or_else(|| panic!("/metrics has no offsite_portal_password_checks_total:\n{text}"));
    line.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("not a count: {line}"))
}

/// The sign-in form's cookie and token, for posting sign-ins.
fn sign_in_form(http: &reqwest::blocking::Client, service: &Service) -> (String, String) {
    let form = get(http, service, "/portal/sign-in", "");
    (pair(set_cookie(&form, "offsite_sign_in").expect("the sign-in cookie")), hidden_csrf(&form.body))
}

fn sign_in_attempt(
    http: &reqwest::blocking::Client,
    service: &Service,
    (cookie, token): &(String, String),
    email: &str,
    password: &str,
) -> Answer {
    post(http, service, "/portal/sign-in", cookie, &[("email", email), ("password", password), ("csrf", token)])
}

fn is_wrong_password(answer: &Answer) -> bool {
    answer.status == 303 && answer.location.as_deref() == Some("/portal/sign-in?failed=true")
}

fn is_limit_refusal(answer: &Answer) -> bool {
    answer.status == 429 && answer.body.contains("too many failed sign-ins")
}

/// 30 wrong passwords for one address sent at once: the attempt is counted before
/// its password is checked, so five are checked (Argon2) and the other 25 are
/// refused with the limit's message without one.
#[test]
fn thirty_concurrent_wrong_passwords_for_one_address_check_at_most_five() {
    let service = Service::start();
    let user = CreatePortalUser { email: "ops@dc.example".into(), password: PASSWORD.into(), subscription_id: None };
    service.operator().create_portal_user(&user).unwrap();
    let form = sign_in_form(&browser_like(&service), &service);
    let before = password_checks(&service);
    let barrier = std::sync::Barrier::new(30);
    let answers: Vec<Answer> = std::thread::scope(|scope| {
        let senders: Vec<_> = (0..30)
            .map(|n| {
                let (service, form, barrier) = (&service, &form, &barrier);
                scope.spawn(move || {
                    let http = browser_like(service);
                    // A connection made before the barrier, so the sign-ins start together.
                    assert_eq!(get(&http, service, "/portal/style.css", "").status, 200);
                    barrier.wait();
                    sign_in_attempt(&http, service, form, "ops@dc.example", &format!("wrong password {n}"))
                })
            })
            .collect();
        senders.into_iter().map(|s| s.join().expect("a sender")).collect()
    });
    let checked = password_checks(&service) - before;
    let wrong = answers.iter().filter(|a| is_wrong_password(a)).count();
    let refused = answers.iter().filter(|a| is_limit_refusal(a)).count();
    let others: Vec<_> = answers.iter().filter(|a| !is_wrong_password(a) && !is_limit_refusal(a)).collect();
    assert!(
        others.is_empty(),
        "answers neither 'wrong password' nor the limit: {:?}",
        others.first().map(|a| (a.status, &a.body))
    );
    assert!(checked <= 5, "{checked} passwords checked (want at most 5); {wrong} answered wrong, {refused} refused");
    assert_eq!((wrong, refused), (5, 25), "{checked} passwords checked");
    // The address is locked from this source, even for the right password, which is not checked.
    assert!(is_limit_refusal(&sign_in_attempt(&browser_like(&service), &service, &form, "ops@dc.example", PASSWORD)));
    assert_eq!(password_checks(&service) - before, checked);
}

/// Wrong passwords from one source lock the address out of that source only: the
/// user signs in from another. Guessing spread over many sources still stops at
/// the address's ceiling of 50 failures, for every source.
#[test]
fn wrong_passwords_from_one_source_do_not_lock_out_another_but_the_address_has_a_ceiling() {
    let service = Service::start();
    let user = CreatePortalUser { email: "ops@dc.example".into(), password: PASSWORD.into(), subscription_id: None };
    service.operator().create_portal_user(&user).unwrap();
    let from = |last: u8| browser_from(&service, IpAddr::from([127, 0, 0, last]));
    let form = sign_in_form(&from(1), &service);
    let attempt = |last: u8, password: &str| sign_in_attempt(&from(last), &service, &form, "ops@dc.example", password);

    for n in 0..5 {
        let answer = attempt(2, "a wrong password!");
        assert!(is_wrong_password(&answer), "wrong password {n} from 127.0.0.2: {} {}", answer.status, answer.body);
    }
    let refused = attempt(2, PASSWORD);
    assert!(is_limit_refusal(&refused), "{} {}", refused.status, refused.body);
    let user = attempt(1, PASSWORD);
    assert_eq!(user.location.as_deref(), Some("/portal/"), "the user from 127.0.0.1: {} {}", user.status, user.body);

    // Nine more sources, five wrong passwords each: 50 failures for the address.
    for last in 3..12 {
        for n in 0..5 {
            let answer = attempt(last, "a wrong password!");
            assert!(
                is_wrong_password(&answer),
                "wrong password {n} from 127.0.0.{last}: {} {}",
                answer.status,
                answer.body
            );
        }
    }
    for last in [1, 12] {
        let refused = attempt(last, PASSWORD);
        assert!(is_limit_refusal(&refused), "127.0.0.{last} after 50 failures: {} {}", refused.status, refused.body);
    }
}

/// A flood from one source of what must be checked with Argon2 (sign-ins for
/// unknown addresses, each new so the limit never stops them; API requests with a
/// live credential's id and wrong secrets) holds one Argon2 slot: runs from one
/// source take turns. A fresh credential's first request from another source is
/// answered about as fast as without the flood. (Before turns, the flood's waiters
/// stood in front of it in the slots' queue: seconds on two cores.)
#[test]
fn a_flood_from_one_source_does_not_starve_another_sources_first_check() {
    let service = Service::start();
    let a = service.tenant("alpha");
    let manager = service.client(&a.subscription_token);
    let live_id = common::id_of(&a.subscription_token).to_string();
    let (here, flooder) = (IpAddr::from([127, 0, 0, 1]), IpAddr::from([127, 0, 0, 2]));

    // A fresh credential's first request (its Argon2 check), from 127.0.0.1.
    let first_use = || {
        let fresh = manager.issue_management_credential(&a.subscription_id, None).unwrap().management_credential;
        let http = browser_from(&service, here);
        assert_eq!(get(&http, &service, "/portal/style.css", "").status, 200, "a connection made first");
        let started = std::time::Instant::now();
        let reply = http
            .get(format!("{}/api/v1/whoami", service.server.url))
            .header("authorization", format!("Bearer {fresh}"))
            .send()
            .expect("an answer");
        assert_eq!(reply.status().as_u16(), 200);
        started.elapsed()
    };
    let alone = first_use();

    let form = sign_in_form(&browser_from(&service, flooder), &service);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let sent = std::sync::atomic::AtomicU64::new(0);
    let during = std::thread::scope(|scope| {
        for n in 0..48u64 {
            let (service, form, stop, sent, live_id) = (&service, &form, &stop, &sent, &live_id);
            scope.spawn(move || {
                let http = browser_from(service, flooder);
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    i += 1;
                    if n % 2 == 0 {
                        let email = format!("nobody-{n}-{i}@nowhere.example");
                        let answer = sign_in_attempt(&http, service, form, &email, "a wrong password!");
                        assert!(is_wrong_password(&answer), "{} {}", answer.status, answer.body);
                    } else {
                        let token = format!("{live_id}.{:064x}", n << 32 | i);
                        let reply = http
                            .get(format!("{}/api/v1/whoami", service.server.url))
                            .header("authorization", format!("Bearer {token}"))
                            .send()
                            .expect("an answer");
                        assert_eq!(reply.status().as_u16(), 401);
                    }
                    sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
        std::thread::sleep(Duration::from_secs(2));
        let during = first_use();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        during
    });
    let sent = sent.into_inner();
    println!("a fresh credential's first request from another source: {alone:?} alone, {during:?} during a flood of {sent} Argon2 checks from 127.0.0.2");
    assert!(sent > 10, "the flood ran: {sent} requests");
    assert!(
        during < alone * 4 + Duration::from_millis(1500),
        "the first request waited {during:?} during the flood ({alone:?} alone)"
    );
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
    // The new user and the tenant's own (the test fixture's staff user).
    let listed = service.get_json("/api/v1/portal-users", &service.operator_token);
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
    assert!(!listed.to_string().contains("argon2"), "{listed}");
}

/// Publish settings downloaded from the portal expire after 90 days: the button
/// says so, the file carries the date, the API lists the credential with it, and
/// on the 91st day the file's credential is refused.
#[test]
fn publish_settings_from_the_portal_expire_after_90_days() {
    let service = Service::start();
    let a = service.tenant("alpha");
    add_portal_user(&service, &a, "it@alpha.example");
    let http = browser_like(&service);
    let home = format!("/portal/subscriptions/{}", a.subscription_id);
    let session = sign_in(&http, &service, "it@alpha.example", &home);
    let page = get(&http, &service, &home, &session.cookie);
    assert!(page.body.contains("valid for 90 days"), "the download says how long: {}", page.body);

    let path = format!("/portal/subscriptions/{}/publish-settings", a.subscription_id);
    let download = post(&http, &service, &path, &session.cookie, &[("csrf", &session.csrf)]);
    assert_eq!(download.status, 200, "{}", download.body);
    let expires_at = download.body.find("Expires=\"").expect("the file says when it expires") + "Expires=\"".len();
    let expires = download.body[expires_at..].split('"').next().unwrap().to_string();
    let expires_unix = time::OffsetDateTime::parse(&expires, &time::format_description::well_known::Rfc3339)
        .expect("an RFC 3339 time")
        .unix_timestamp();
    let in_90_days = time::OffsetDateTime::now_utc().unix_timestamp() + 90 * 86_400;
    assert!((in_90_days - 600..=in_90_days + 600).contains(&expires_unix), "{expires}");
    let at = download.body.find("ManagementCredential=\"").unwrap() + "ManagementCredential=\"".len();
    let token = download.body[at..].split('"').next().unwrap().to_string();
    let id = token.split_once('.').unwrap().0.to_string();

    let listed = service.get_json(
        &format!("/api/v1/subscriptions/{}/management-credentials", a.subscription_id),
        &a.subscription_token,
    );
    let credential = listed.as_array().unwrap().iter().find(|c| c["id"] == id.as_str()).expect("listed").clone();
    let listed_expires = credential["expires"].as_str().expect("the credential expires");
    let listed_unix = time::OffsetDateTime::parse(listed_expires, &time::format_description::well_known::Rfc3339)
        .unwrap()
        .unix_timestamp();
    assert_eq!(listed_unix, expires_unix);

    assert_eq!(service.call("GET", "/api/v1/whoami", Some(&token), &common::Body::Empty).status, 200);
    let service = service.restart_with_clock_offset(91 * 86_400);
    let reply = service.call("GET", "/api/v1/whoami", Some(&token), &common::Body::Empty);
    assert_eq!(reply.status, 401, "{}", reply.text());
    assert!(reply.text().contains("expired"), "{}", reply.text());
}

/// Signs in, answering the session cookie, or `None` with the refusal's status and body.
fn try_sign_in(
    http: &reqwest::blocking::Client,
    service: &Service,
    email: &str,
    password: &str,
) -> Result<String, Answer> {
    let form = get(http, service, "/portal/sign-in", "");
    let cookie = pair(set_cookie(&form, "offsite_sign_in").expect("the sign-in cookie"));
    let token = hidden_csrf(&form.body);
    let signed =
        post(http, service, "/portal/sign-in", &cookie, &[("email", email), ("password", password), ("csrf", &token)]);
    match set_cookie(&signed, "offsite_session") {
        Some(session) if signed.location.as_deref() == Some("/portal/") => Ok(pair(session)),
        _ => Err(signed),
    }
}

/// The operator disables, enables, re-passwords and removes portal users through
/// the API (only the operator may), and each of those ends the user's sessions at
/// once: the next request with an old cookie is sent to sign in.
#[test]
fn disabling_repasswording_or_removing_a_portal_user_ends_their_sessions_at_once() {
    let service = Service::start();
    let a = service.tenant("alpha");
    let user = CreatePortalUser {
        email: "it@alpha.example".into(),
        password: PASSWORD.into(),
        subscription_id: Some(a.subscription_id.clone()),
    };
    let made = service.operator().create_portal_user(&user).unwrap();
    let http = browser_like(&service);
    let home = format!("/portal/subscriptions/{}", a.subscription_id);
    let works = |cookie: &str| get(&http, &service, &home, cookie).status == 200;
    let sign_in = |password: &str| try_sign_in(&http, &service, "it@alpha.example", password);
    let api = |method: &str, path: &str, token: &str, body: common::Body| {
        service.call(method, &format!("/api/v1/portal-users/{}{path}", made.id), Some(token), &body)
    };
    let operator = service.operator_token.clone();

    // Only the operator: the user's own subscription may not.
    let disabled = |value: bool| common::Body::Json(serde_json::json!({ "disabled": value }));
    for (method, path, body) in [
        ("PUT", "/disabled", disabled(true)),
        ("PUT", "/disabled", disabled(false)),
        ("DELETE", "", common::Body::Empty),
    ] {
        let reply = api(method, path, &a.subscription_token, body);
        assert_eq!(reply.status, 403, "{method} {path}: {}", reply.text());
    }
    let reply = api(
        "PUT",
        "/password",
        &a.subscription_token,
        common::Body::Json(serde_json::json!({"password": "x".repeat(20)})),
    );
    assert_eq!(reply.status, 403, "{}", reply.text());
    let reply = service.call("PUT", "/api/v1/portal-users/usr_nothere/disabled", Some(&operator), &disabled(true));
    assert!(reply.status == 404 && reply.text().contains("usr_nothere"), "{}", reply.text());

    // Disabled: both sessions end, signing in is refused saying why.
    let (first, second) = (sign_in(PASSWORD).ok().unwrap(), sign_in(PASSWORD).ok().unwrap());
    assert!(works(&first) && works(&second));
    let reply = api("PUT", "/disabled", &operator, disabled(true));
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(reply.json()["disabled"].is_string(), "{}", reply.text());
    assert!(!works(&first) && !works(&second), "a disabled user's sessions end at once");
    let refused = sign_in(PASSWORD).expect_err("a disabled user cannot sign in");
    assert!(refused.body.contains("disabled"), "{} {}", refused.status, refused.body);

    // Enabled again: signing in works.
    let reply = api("PUT", "/disabled", &operator, disabled(false));
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(reply.json()["disabled"].is_null(), "{}", reply.text());
    let third = sign_in(PASSWORD).ok().expect("enabled again");
    assert!(works(&third));

    // A new password: the session ends, the old password no longer signs in.
    let short = api("PUT", "/password", &operator, common::Body::Json(serde_json::json!({"password": "short"})));
    assert!(short.status == 400 && short.text().contains("at least 12"), "{}", short.text());
    assert!(works(&third), "a refused change ends nothing");
    let new_password = "another portal password, long";
    let reply = api("PUT", "/password", &operator, common::Body::Json(serde_json::json!({"password": new_password})));
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(!works(&third), "a re-passworded user's sessions end at once");
    assert!(sign_in(PASSWORD).is_err());
    let fourth = sign_in(new_password).ok().expect("the new password signs in");
    assert!(works(&fourth));

    // Removed: the session ends, the address no longer signs in, the list forgets it.
    let reply = api("DELETE", "", &operator, common::Body::Empty);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(!works(&fourth), "a removed user's sessions end at once");
    assert!(sign_in(new_password).is_err());
    let listed = service.get_json("/api/v1/portal-users", &operator);
    assert!(!listed.to_string().contains("it@alpha.example"), "{listed}");
    assert_eq!(api("DELETE", "", &operator, common::Body::Empty).status, 404);
}

/// The same from the operations page: forms with the session's CSRF token
/// disable, enable, re-password and remove a user, whose session ends at once.
#[test]
fn the_operations_page_manages_portal_users() {
    let service = Service::start();
    let a = service.tenant("alpha");
    let operator = service.operator();
    let make = |email: &str, subscription: Option<&String>| CreatePortalUser {
        email: email.into(),
        password: PASSWORD.into(),
        subscription_id: subscription.cloned(),
    };
    let made = operator.create_portal_user(&make("it@alpha.example", Some(&a.subscription_id))).unwrap();
    operator.create_portal_user(&make("ops@datacenter.example", None)).unwrap();
    let http = browser_like(&service);
    let ops = sign_in(&http, &service, "ops@datacenter.example", "/portal/operator");
    let home = format!("/portal/subscriptions/{}", a.subscription_id);
    let page = get(&http, &service, "/portal/operator", &ops.cookie);
    for action in ["disable", "password", "remove"] {
        let form = format!("/portal/operator/users/{}/{action}", made.id);
        assert!(page.body.contains(&form), "the page has a form to {action}: {}", page.body);
    }
    let act = |action: &str, fields: &[(&str, &str)], csrf: &str| {
        let mut all = fields.to_vec();
        all.push(("csrf", csrf));
        post(&http, &service, &format!("/portal/operator/users/{}/{action}", made.id), &ops.cookie, &all)
    };

    let user = sign_in(&http, &service, "it@alpha.example", &home);
    assert_eq!(act("disable", &[], &"0".repeat(64)).status, 403, "a forged form changes nothing");
    assert_eq!(get(&http, &service, &home, &user.cookie).status, 200);
    let done = act("disable", &[], &ops.csrf);
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(get(&http, &service, &home, &user.cookie).location.as_deref(), Some("/portal/sign-in"));
    let page = get(&http, &service, "/portal/operator", &ops.cookie);
    assert!(page.body.contains(&format!("/portal/operator/users/{}/enable", made.id)), "{}", page.body);
    assert_eq!(act("enable", &[], &ops.csrf).status, 303);

    let user = sign_in(&http, &service, "it@alpha.example", &home);
    assert_eq!(act("password", &[("password", "a new long password")], &ops.csrf).status, 303);
    assert_eq!(get(&http, &service, &home, &user.cookie).location.as_deref(), Some("/portal/sign-in"));
    let user = try_sign_in(&http, &service, "it@alpha.example", "a new long password").ok().expect("new password");

    // Removing needs the confirmation box.
    let unconfirmed = act("remove", &[], &ops.csrf);
    assert_eq!(unconfirmed.status, 400, "{}", unconfirmed.body);
    assert_eq!(get(&http, &service, &home, &user).status, 200);
    assert_eq!(act("remove", &[("confirm", "yes")], &ops.csrf).status, 303);
    assert_eq!(get(&http, &service, &home, &user).location.as_deref(), Some("/portal/sign-in"));
    let page = get(&http, &service, "/portal/operator", &ops.cookie);
    assert!(!page.body.contains("it@alpha.example"), "{}", page.body);
}

// ------------------------------------------------------------------ the page matrix

/// Who opens a portal page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Visitor {
    Anonymous,
    /// A's subscription management credential, sent as an API bearer token.
    SubscriptionBearer,
    /// The operator's API credential as a bearer token.
    OperatorBearer,
    /// A session cookie whose user signed out.
    SignedOut,
    UserA,
    UserB,
    Operator,
}

/// A signed-in browser: its session cookie and the session's CSRF token.
struct Session {
    cookie: String,
    csrf: String,
}

fn sign_in(http: &reqwest::blocking::Client, service: &Service, email: &str, home: &str) -> Session {
    let form = get(http, service, "/portal/sign-in", "");
    let cookie = pair(set_cookie(&form, "offsite_sign_in").expect("the sign-in cookie"));
    let token = hidden_csrf(&form.body);
    let signed =
        post(http, service, "/portal/sign-in", &cookie, &[("email", email), ("password", PASSWORD), ("csrf", &token)]);
    assert_eq!(signed.location.as_deref(), Some("/portal/"), "{email} signs in: {}", signed.body);
    let cookie = pair(set_cookie(&signed, "offsite_session").expect("a session cookie"));
    let page = get(http, service, home, &cookie);
    assert_eq!(page.status, 200, "{email} opens {home}: {}", page.body);
    Session { csrf: hidden_csrf(&page.body), cookie }
}

/// What a form carries as its CSRF token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Valid,
    Wrong,
    Missing,
}

/// The request one route gets: the path with the owner's ids, and for a form its
/// fields (a multipart body for the certificate upload).
fn portal_request(
    service: &Service,
    route: &offsite_server::PortalRoute,
    owner: &common::Tenant,
    n: usize,
) -> (String, Vec<(String, String)>) {
    let path = route
        .path
        .split('/')
        .map(|part| match part {
            "{subscription_id}" => owner.subscription_id.clone(),
            "{vault_id}" => owner.vault_id.clone(),
            "{import_job_id}" => owner.import_job_id.clone(),
            "{drive_id}" => owner.drive_id.clone(),
            "{kind}" => "error".to_string(),
            "{machine_id}" => owner.machine_id.clone(),
            "{request_id}" => owner.protection_request_id.clone(),
            "{user_id}" => owner.portal_user_id.clone(),
            "{export_job_id}" => owner.export_job_id.clone(),
            other if other.starts_with('{') => {
                panic!("{} {} has a parameter {other} the page matrix cannot fill: teach it", route.method, route.path)
            }
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/");
    let mut fields = Vec::new();
    if route.path == "/portal/operator/users" {
        fields.push(("email".to_string(), format!("matrix-{n}@{}.example", owner.name)));
        fields.push(("password".to_string(), PASSWORD.to_string()));
        fields.push(("subscription".to_string(), owner.subscription_id.clone()));
    }
    if route.path.ends_with("/users/{user_id}/password") {
        fields.push(("password".to_string(), format!("matrix password {n}")));
    }
    if route.path.ends_with("/export-jobs") || route.path.ends_with("/export-jobs/preview") {
        fields.push(("name".to_string(), format!("matrix-export-{n}")));
        fields.push(("machine".to_string(), owner.machine_id.clone()));
        fields.push(("datacenter".to_string(), owner.datacenter_name.clone()));
        fields.push(("drive_size_gb".to_string(), "1000".to_string()));
    }
    if route.path.ends_with("/users/{user_id}/remove") {
        fields.push(("confirm".to_string(), "yes".to_string()));
    }
    if route.path == "/portal/sign-in" {
        fields.push(("email".to_string(), format!("user@{}.example", owner.name)));
        fields.push(("password".to_string(), PASSWORD.to_string()));
    }
    if route.path.ends_with("/application/certificates") {
        // The file `offsite certgen export-cert --challenge` writes: the certificate
        // and its proof of possession over a challenge of the owner's.
        let cert = offsite_seeding::application::generate(&format!("matrix-{n}")).expect("a certificate");
        let manager = service.client(&owner.subscription_token);
        let upload = common::proven(&manager, &owner.subscription_id, &cert.cert_pem, &cert.key_pem);
        let proof = offsite_api::possession::block(upload.possession.as_ref().expect("a proof"));
        fields.push(("certificate".to_string(), format!("{}{proof}", cert.cert_pem)));
    }
    (path, fields)
}

fn send_portal(
    http: &reqwest::blocking::Client,
    service: &Service,
    route: &offsite_server::PortalRoute,
    (path, fields): (&str, &[(String, String)]),
    visitor: Visitor,
    sessions: &std::collections::HashMap<&str, Session>,
    token: Token,
) -> Answer {
    let url = format!("{}{path}", service.server.url);
    let mut request = if route.method == "GET" { http.get(url) } else { http.post(url) };
    let session = match visitor {
        Visitor::Anonymous => None,
        Visitor::SubscriptionBearer | Visitor::OperatorBearer => None,
        Visitor::SignedOut => sessions.get("signed out"),
        Visitor::UserA => sessions.get("A"),
        Visitor::UserB => sessions.get("B"),
        Visitor::Operator => sessions.get("operator"),
    };
    if let Some(session) = session {
        request = request.header("cookie", &session.cookie);
    }
    if let Some(token) = match visitor {
        Visitor::SubscriptionBearer => sessions.get("bearer A").map(|s| s.cookie.clone()),
        Visitor::OperatorBearer => sessions.get("bearer operator").map(|s| s.cookie.clone()),
        _ => None,
    } {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    if route.method == "POST" {
        let mut all: Vec<(String, String)> = fields.to_vec();
        let csrf = session.map(|s| s.csrf.clone()).unwrap_or_else(|| "0".repeat(64));
        match token {
            Token::Valid => all.push(("csrf".into(), csrf)),
            Token::Wrong => all.push(("csrf".into(), "0".repeat(64))),
            Token::Missing => {}
        }
        if route.path.ends_with("/application/certificates") {
            let boundary = "offsite-matrix-boundary";
            let mut body = String::new();
            for (name, value) in &all {
                body.push_str(&format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}.pem\"\r\n\r\n{value}\r\n"
                ));
            }
            body.push_str(&format!("--{boundary}--\r\n"));
            request = request.header("content-type", format!("multipart/form-data; boundary={boundary}")).body(body);
        } else {
            request = request.form(&all);
        }
    }
    answer(request.send().expect("an answer"))
}

/// Every route the portal serves (from the router's own list, so a new page is
/// covered without editing this test) against every kind of visitor, on tenant
/// A's and tenant B's resources: anonymous visitors and API credentials are sent
/// to sign in; a subscription's user sees their own tenant only and gets the API's
/// "does not exist" for the other and for operator pages; every form refuses a
/// wrong or missing CSRF token; the operator reaches everything.
#[test]
fn every_portal_page_against_every_visitor_and_tenant() {
    let service = Service::start();
    let a = service.tenant("alpha");
    let b = service.tenant("bravo");
    let operator = service.operator();
    for (email, subscription) in [
        ("user@alpha.example", Some(&a.subscription_id)),
        ("user@bravo.example", Some(&b.subscription_id)),
        ("ops@datacenter.example", None),
        ("leaver@alpha.example", Some(&a.subscription_id)),
    ] {
        let user =
            CreatePortalUser { email: email.into(), password: PASSWORD.into(), subscription_id: subscription.cloned() };
        operator.create_portal_user(&user).expect("the operator creates a portal user");
    }
    let http = browser_like(&service);
    let home = |t: &common::Tenant| format!("/portal/subscriptions/{}", t.subscription_id);
    let mut sessions = std::collections::HashMap::new();
    sessions.insert("A", sign_in(&http, &service, "user@alpha.example", &home(&a)));
    sessions.insert("B", sign_in(&http, &service, "user@bravo.example", &home(&b)));
    sessions.insert("operator", sign_in(&http, &service, "ops@datacenter.example", "/portal/operator"));
    let leaver = sign_in(&http, &service, "leaver@alpha.example", &home(&a));
    let out = post(&http, &service, "/portal/sign-out", &leaver.cookie, &[("csrf", &leaver.csrf)]);
    assert_eq!(out.location.as_deref(), Some("/portal/sign-in"));
    sessions.insert("signed out", leaver);
    sessions.insert("bearer A", Session { cookie: a.subscription_token.clone(), csrf: String::new() });
    sessions.insert("bearer operator", Session { cookie: service.operator_token.clone(), csrf: String::new() });

    let routes = offsite_server::PORTAL_ROUTES;
    assert!(routes.len() >= 15, "the portal lists only {} routes", routes.len());
    let visitors = [
        Visitor::Anonymous,
        Visitor::SubscriptionBearer,
        Visitor::OperatorBearer,
        Visitor::SignedOut,
        Visitor::UserA,
        Visitor::UserB,
        Visitor::Operator,
    ];
    let mut failures = Vec::new();
    let mut checks = 0;
    let mut n = 0;
    // The receive step moves A's job on: the operator's own control comes last.
    let mut ordered: Vec<_> = routes.iter().collect();
    ordered.sort_by_key(|r| r.path.ends_with("/receive"));
    for route in ordered {
        for visitor in visitors {
            for owner in [&a, &b] {
                let tokens: &[Token] = if route.method == "POST" {
                    &[Token::Wrong, Token::Missing, Token::Valid]
                } else {
                    &[Token::Valid]
                };
                for &token in tokens {
                    // Signing out with the right token ends the session the rest of the matrix uses.
                    if route.path == "/portal/sign-out" && token == Token::Valid {
                        continue;
                    }
                    n += 1;
                    let (path, fields) = portal_request(&service, route, owner, n);
                    let reply = send_portal(&http, &service, route, (&path, &fields), visitor, &sessions, token);
                    checks += 1;
                    // A page naming no tenant's resource is every signed-in user's own.
                    let own = match visitor {
                        Visitor::UserA => std::ptr::eq(owner, &a) || !route.path.contains('{'),
                        Visitor::UserB => std::ptr::eq(owner, &b) || !route.path.contains('{'),
                        _ => false,
                    };
                    let signed_in = matches!(visitor, Visitor::UserA | Visitor::UserB | Visitor::Operator);
                    let to_sign_in = reply.status == 303 && reply.location.as_deref() == Some("/portal/sign-in");
                    let not_found = reply.status == 404 && reply.body.contains("does not exist, or you may not see it");
                    let success = (200..400).contains(&reply.status) && !to_sign_in;
                    let (want, ok) = match route.access {
                        offsite_server::PortalAccess::Public => {
                            // The sign-in form is bound to its own cookie, never sent here.
                            if route.method == "POST" {
                                ("403 (no sign-in cookie)", reply.status == 403)
                            } else {
                                ("a page or a redirect", (200..400).contains(&reply.status))
                            }
                        }
                        _ if !signed_in => ("303 to sign-in", to_sign_in),
                        offsite_server::PortalAccess::Operator if visitor != Visitor::Operator => {
                            ("404 (not an operator)", not_found)
                        }
                        _ if route.method == "POST" && token != Token::Valid => {
                            ("403 for the CSRF token", reply.status == 403 && reply.body.contains("reload the page"))
                        }
                        // Receiving needs a job on its way: A's is still being made, so the
                        // operator's request reaches it and is judged on its state (409).
                        _ if visitor == Visitor::Operator && route.path.ends_with("/receive") => {
                            ("409 (the job is not shipping)", reply.status == 409)
                        }
                        // Requests are decided once: the approval before it decided A's and B's.
                        _ if visitor == Visitor::Operator && route.path.ends_with("/reject") => {
                            ("409 (the request was decided)", reply.status == 409)
                        }
                        // An export job's customer steps: the customer's (an operator hears
                        // 403), on a job the station has not shipped yet (409).
                        _ if route.path.ends_with("/delivered") || route.path.ends_with("/complete") => {
                            if visitor == Visitor::Operator {
                                ("403 (the customer's step)", reply.status == 403)
                            } else if own {
                                ("409 (the drives are not shipped)", reply.status == 409)
                            } else {
                                ("404 (another tenant)", not_found)
                            }
                        }
                        _ if visitor == Visitor::Operator || own => ("success", success),
                        _ => ("404 (another tenant)", not_found),
                    };
                    let leaked = if own || visitor == Visitor::Operator {
                        None
                    } else {
                        owner
                            .secrets_and_ids()
                            .into_iter()
                            .filter(|s| !path.contains(*s))
                            .find(|s| reply.body.contains(*s))
                            .map(str::to_string)
                    };
                    if !ok || leaked.is_some() {
                        failures.push(format!(
                            "{:4} {:66} {visitor:?} on {} ({token:?} token): {} {:?}, want {want}{} {:.120}",
                            route.method,
                            route.path,
                            owner.name,
                            reply.status,
                            reply.location,
                            leaked.map(|l| format!(", shows {l}")).unwrap_or_default(),
                            reply.body.replace('\n', " ")
                        ));
                    }
                }
            }
        }
    }
    println!("portal matrix: {} routes x {} visitors x 2 tenants, {checks} requests", routes.len(), visitors.len());
    assert!(failures.is_empty(), "{} of {checks} portal checks failed:\n{}", failures.len(), failures.join("\n"));
    // The sessions the matrix used still work: the refused forms did not end them.
    for who in ["A", "B", "operator"] {
        let session = &sessions[who];
        let home = get(&http, &service, "/portal/", &session.cookie);
        assert_ne!(home.location.as_deref(), Some("/portal/sign-in"), "{who}'s session ended");
    }
}

/// A session lasts 12 hours on the service's clock: at 11 hours it opens pages, at
/// 13 the browser is sent to sign in again (and its forms are refused).
#[test]
fn a_session_past_its_lifetime_is_sent_to_sign_in() {
    let service = Service::start();
    let a = service.tenant("alpha");
    add_portal_user(&service, &a, "it@alpha.example");
    let home = format!("/portal/subscriptions/{}", a.subscription_id);
    let session = sign_in(&browser_like(&service), &service, "it@alpha.example", &home);

    let service = service.restart_with_clock_offset(11 * 3600);
    let http = browser_like(&service);
    assert_eq!(get(&http, &service, &home, &session.cookie).status, 200, "an 11-hour-old session still works");
    let service = service.restart_with_clock_offset(13 * 3600);
    let http = browser_like(&service);
    let page = get(&http, &service, &home, &session.cookie);
    assert_eq!((page.status, page.location.as_deref()), (303, Some("/portal/sign-in")), "{}", page.body);
    let credentials = format!("/portal/vaults/{}/credentials", a.vault_id);
    let form = post(&http, &service, &credentials, &session.cookie, &[("csrf", &session.csrf)]);
    assert_eq!((form.status, form.location.as_deref()), (303, Some("/portal/sign-in")));
}

/// The certificate upload, oversized (a 2 MiB file) and with thousands of parts:
/// refused with a sentence that says which, and the portal keeps serving.
#[test]
fn oversized_and_many_part_uploads_are_refused() {
    let service = Service::start();
    let a = service.tenant("alpha");
    add_portal_user(&service, &a, "it@alpha.example");
    let home = format!("/portal/subscriptions/{}", a.subscription_id);
    let http = browser_like(&service);
    let session = sign_in(&http, &service, "it@alpha.example", &home);
    let path = format!("/portal/subscriptions/{}/application/certificates", a.subscription_id);
    let upload = |parts: &[(&str, String)]| {
        let boundary = "offsite-upload-boundary";
        let mut body = String::new();
        for (name, value) in parts {
            body.push_str(&format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"c.pem\"\r\n\r\n{value}\r\n"
            ));
        }
        body.push_str(&format!("--{boundary}--\r\n"));
        http.post(format!("{}{path}", service.server.url))
            .header("cookie", &session.cookie)
            .header("content-type", format!("multipart/form-data; boundary={boundary}"))
            .body(body)
            .send()
            .map(answer)
    };
    let huge = vec![("csrf", session.csrf.clone()), ("certificate", "A".repeat(2 << 20))];
    // The service may answer before reading it all and close the connection: one of
    // a few tries gets the answer.
    let answers: Vec<Answer> = (0..5).filter_map(|_| upload(&huge).ok()).collect();
    assert!(!answers.is_empty(), "no answer to a 2 MiB upload");
    for reply in &answers {
        assert_eq!(reply.status, 413, "{}", reply.body);
        assert!(reply.body.contains("too large"), "{}", reply.body);
    }
    let mut many = vec![("csrf", session.csrf.clone())];
    many.extend((0..5000).map(|_| ("filler", "x".to_string())));
    // Refused at the ninth part, also before the body is read (seen in a loaded run:
    // a broken pipe instead of the answer): one of a few tries gets it.
    let answers: Vec<Answer> = (0..5).filter_map(|_| upload(&many).ok()).collect();
    assert!(!answers.is_empty(), "no answer to a 5,000-part upload");
    for reply in &answers {
        assert_eq!(reply.status, 400, "{}", reply.body);
        assert!(reply.body.contains("more than 8 parts"), "{}", reply.body);
    }
    assert_eq!(get(&http, &service, &home, &session.cookie).status, 200, "the portal keeps serving");
}

/// The vault's protection page lists what a machine removed with its purge date,
/// and its button brings a recovery point back; the operator decides a request
/// to weaken the protection from the operations page.
#[test]
fn a_soft_deleted_recovery_point_is_listed_and_undeleted_from_the_portal() {
    let service = Service::start();
    let a = service.tenant("alpha");
    let operator = service.operator();
    for (email, subscription) in [("user@alpha.example", Some(&a.subscription_id)), ("ops@datacenter.example", None)] {
        let user =
            CreatePortalUser { email: email.into(), password: PASSWORD.into(), subscription_id: subscription.cloned() };
        operator.create_portal_user(&user).unwrap();
    }
    let machine = service.client(&a.machine_token);
    let snapshot = a.recovery_points[0].snapshot_id.clone();
    let bytes = b"a snapshot file".to_vec();
    let name = common::content_name(&bytes);
    machine.put_file(&a.machine_id, "snapshots", &name, bytes.into()).unwrap();
    machine.delete_file(&a.machine_id, "snapshots", &name).unwrap();
    assert!(!machine.list_files(&a.machine_id, "snapshots").unwrap().iter().any(|f| f.name == name));

    let http = browser_like(&service);
    let home = format!("/portal/subscriptions/{}", a.subscription_id);
    let user = sign_in(&http, &service, "user@alpha.example", &home);
    let page_path = format!("/portal/vaults/{}/protection", a.vault_id);
    let page = get(&http, &service, &page_path, &user.cookie);
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains(&name[..16]) && page.body.contains("Purged after"), "{}", page.body);
    assert!(page.body.contains("on: what a machine removes is kept 14 days"), "{}", page.body);
    assert!(!page.body.contains(&snapshot[..16]), "a live point is not listed as soft-deleted");
    let undo = post(
        &http,
        &service,
        &format!("/portal/machines/{}/undelete", a.machine_id),
        &user.cookie,
        &[("csrf", &user.csrf), ("point", &name)],
    );
    assert_eq!(undo.status, 303, "{}", undo.body);
    assert!(machine.list_files(&a.machine_id, "snapshots").unwrap().iter().any(|f| f.name == name));
    let page = get(&http, &service, &page_path, &user.cookie);
    assert!(page.body.contains("Nothing: every file this machine stored is live."), "{}", page.body);

    // The tenant's pending request (soft delete off), decided by the operator.
    let ops = sign_in(&http, &service, "ops@datacenter.example", "/portal/operator");
    let operations = get(&http, &service, "/portal/operator", &ops.cookie);
    assert!(operations.body.contains(&a.protection_request_id), "{}", operations.body);
    let reject = format!("/portal/operator/protection-requests/{}/reject", a.protection_request_id);
    assert_eq!(post(&http, &service, &reject, &ops.cookie, &[("csrf", &ops.csrf)]).status, 303);
    let protection = service.client(&a.subscription_token).vault_protection(&a.vault_id).unwrap();
    assert_eq!(protection.soft_delete_days, Some(14));
    assert_eq!(protection.requests[0].state.to_string(), "rejected");
}

#[test]
fn the_offline_backup_page_plans_shipping_against_uploading() {
    let service = Service::start();
    let a = service.tenant("alpha");
    add_portal_user(&service, &a, "it@alpha.example");
    let http = browser_like(&service);
    let page = format!("/portal/subscriptions/{}/import-jobs", a.subscription_id);
    let session = sign_in(&http, &service, "it@alpha.example", &page);

    let empty = get(&http, &service, &page, &session.cookie);
    assert!(empty.body.contains(r#"<form method="get""#) && empty.body.contains(r#"name="uplink""#), "{}", empty.body);
    assert!(!empty.body.contains(r#"id="plan""#), "no estimate before the form is sent: {}", empty.body);

    // The same figures as `offsite plan --size 10TiB --uplink 20Mbit/s`.
    let planned =
        get(&http, &service, &format!("{page}?size=10TiB&uplink=20Mbit%2Fs&change_rate=&drive_size="), &session.cookie);
    assert_eq!(planned.status, 200, "{}", planned.body);
    let body = &planned.body;
    assert!(body.contains(r#"id="plan-initial""#) && body.contains(r#"id="plan-restore""#), "{body}");
    assert!(body.contains("56.6 days") && body.contains("5.12 days") && body.contains("2 drives"), "{body}");
    assert!(body.contains("Recommended: on drives."), "{body}");
    assert!(body.contains(r#"value="10TiB""#), "the form keeps what was typed: {body}");

    let thin = get(&http, &service, &format!("{page}?size=12TiB&uplink=10Mbit%2Fs"), &session.cookie);
    assert!(thin.body.contains("does not fit the uplink") && thin.body.contains("13.6 Mbit/s"), "{}", thin.body);

    // Bad fields are named, with the form they take; the page still answers 200.
    let bad = get(&http, &service, &format!("{page}?size=12XB&uplink=fast&shipping_days=soon"), &session.cookie);
    assert_eq!(bad.status, 200, "{}", bad.body);
    assert!(bad.body.contains(r#"id="plan-errors""#), "{}", bad.body);
    for needle in
        ["Size: &#39;12XB&#39; is not a size", "12TiB", "Uplink: &#39;fast&#39; is not a rate", "Shipping days:"]
    {
        assert!(
            bad.body.contains(needle) || bad.body.contains(&needle.replace("&#39;", "'")),
            "{needle}: {}",
            bad.body
        );
    }
    assert!(!bad.body.contains(r#"id="plan""#), "{}", bad.body);
    let missing = get(&http, &service, &format!("{page}?size=1TB&uplink="), &session.cookie);
    assert!(missing.body.contains("Uplink: required"), "{}", missing.body);
}

/// The import job's page shows its chain of custody, verified by the same
/// function `offsite diskprep --verify-custody` runs, with who handled each
/// drive: the application that prepared it and the station that received it.
#[test]
fn the_import_job_page_shows_its_verified_chain_of_custody() {
    use offsite_api::types::CustodyEventKind;
    use offsite_seeding::custody::{CustodySigner, Recorder, StationKey};
    let service = Service::start();
    let a = service.tenant("alpha");
    add_portal_user(&service, &a, "it@alpha.example");
    let http = browser_like(&service);
    let session = sign_in(&http, &service, "it@alpha.example", &format!("/portal/subscriptions/{}", a.subscription_id));
    let path = format!("/portal/import-jobs/{}", a.import_job_id);
    let page = get(&http, &service, &path, &session.cookie);
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("Chain of custody") && page.body.contains("No custody event recorded yet"),
        "{}",
        page.body
    );

    let app = service.app_client(&a.application);
    let signer = CustodySigner::Application(offsite_api::application_auth::Signer::new(&a.application).unwrap());
    Recorder::new(&app, &signer, &a.import_job_id).record(Some(&a.drive_id), CustodyEventKind::Prepared, "").unwrap();
    let key = StationKey::generate();
    let issued =
        service.operator().issue_station_credential_with_key(&a.datacenter_id, None, Some(&key.public_hex())).unwrap();
    let station = service.client(&issued.station_credential);
    let signer = key.signer(&issued.credential.id);
    Recorder::new(&station, &signer, &a.import_job_id)
        .record(Some(&a.drive_id), CustodyEventKind::Received, "tracking=1Z")
        .unwrap();

    let page = get(&http, &service, &path, &session.cookie);
    assert!(page.body.contains("<strong>Verified</strong>: 2 signed events"), "{}", page.body);
    assert!(page.body.contains("offline-seeding application"), "{}", page.body);
    assert!(page.body.contains(&format!("station credential {}", issued.credential.id)), "{}", page.body);
    assert!(page.body.contains("tracking=1Z"), "{}", page.body);
}
