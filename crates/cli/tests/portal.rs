//! The web portal in real headless Chromium (Debian's `chromium` through
//! `chromedriver`, WebDriver from Rust with fantoccini), against a real service
//! doing the real offline-seeding workflow with the `offsite` binary:
//! sign in, download vault credentials and publish settings and use them, upload a
//! certificate by hand and see its thumbprint, follow an import job from Creating
//! to Completed while ingest runs, see the charts, and check that one
//! subscription's user cannot open another's pages.
//!
//! A screenshot of each main page is saved under `target/tmp/portal-screenshots/`.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use common::service::{Agent, Service};
use common::site::*;
use common::*;

const PASSWORD_CONTOSO: &str = "contoso portal password";
const PASSWORD_FABRIKAM: &str = "fabrikam portal password";
const PASSWORD_OPERATOR: &str = "operator portal password";

fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("portal-screenshots");
    std::fs::create_dir_all(&dir).expect("a screenshot folder");
    dir
}

/// A headless Chromium session that accepts the service's self-signed
/// certificate (clients pin its fingerprint; a browser cannot) and downloads into
/// `downloads` without asking.
async fn browser(driver: &offsite_testbed::ChromeDriver, downloads: &Path) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("acceptInsecureCerts".into(), json!(true));
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": driver.browser(),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--ignore-certificate-errors", "--window-size=1280,1000"],
            "prefs": { "download.default_directory": downloads, "download.prompt_for_download": false },
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url())
        .await
        .expect("a Chromium session through chromedriver")
}

/// Clicks something that loads a new page, and waits until it has: the old page's
/// root element goes stale when the browser replaces the document.
async fn click_and_load(client: &Client, locator: Locator<'_>) {
    let old = client.find(Locator::Css("html")).await.unwrap();
    client.find(locator).await.unwrap().click().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while old.tag_name().await.is_ok() {
        assert!(Instant::now() < deadline, "no new page loaded after the click");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    client.wait().for_element(Locator::Css("main")).await.unwrap();
}

async fn sign_in(client: &Client, service: &Service, email: &str, password: &str) {
    client.goto(&format!("{}/portal/", service.url)).await.unwrap();
    // Not signed in: the portal sends the browser to its sign-in page.
    assert!(client.current_url().await.unwrap().path().ends_with("/portal/sign-in"));
    client.find(Locator::Css("#email")).await.unwrap().send_keys(email).await.unwrap();
    client.find(Locator::Css("#password")).await.unwrap().send_keys(password).await.unwrap();
    click_and_load(client, Locator::Css("main button[type=submit]")).await;
}

async fn sign_out(client: &Client) {
    click_and_load(client, Locator::Css("header form button")).await;
    assert!(client.current_url().await.unwrap().path().ends_with("/portal/sign-in"));
}

async fn text_of(client: &Client) -> String {
    client.find(Locator::Css("main")).await.unwrap().text().await.unwrap()
}

/// A screenshot of the whole page (WebDriver shoots the window: make it tall).
async fn shoot(client: &Client, name: &str) {
    let (width, height) = client.get_window_size().await.unwrap();
    client.set_window_size(width as u32, 2400).await.unwrap();
    let png = client.screenshot().await.expect("a screenshot");
    client.set_window_size(width as u32, height as u32).await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

/// Waits for one new file in `dir` whose name ends in `suffix` (a finished download).
fn downloaded(dir: &Path, suffix: &str) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(suffix)));
        if let Some(path) = found {
            return path;
        }
        assert!(Instant::now() < deadline, "no *{suffix} was downloaded into {}", dir.display());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn portal_user(service: &Service, email: &str, password: &str, role: &[&str]) {
    let mut args = vec!["portal-user", "create", email];
    args.extend_from_slice(role);
    service.admin(args).env("OFFSITE_PORTAL_PASSWORD", password).run().ok();
}

/// Reloads `url` until the page shows `state` as the import job's state.
async fn wait_for_job_state(client: &Client, url: &str, state: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        client.goto(url).await.unwrap();
        let shown = client.find(Locator::Css("#job-state")).await.unwrap().text().await.unwrap();
        if shown == state {
            return shown;
        }
        assert!(Instant::now() < deadline, "the import job page still shows {shown}, not {state}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_and_operators_follow_the_offline_seeding_in_a_browser() {
    let scratch = temp();
    let root = scratch.path();
    let service = Service::start(root);
    let site = Site::new(&service, root);
    let fabrikam = service.subscription("fabrikam");
    portal_user(&service, "it@contoso.example", PASSWORD_CONTOSO, &["--subscription", &site.tenant.id]);
    portal_user(&service, "it@fabrikam.example", PASSWORD_FABRIKAM, &["--subscription", &fabrikam.id]);
    portal_user(&service, "ops@offsite.example", PASSWORD_OPERATOR, &["--operator"]);
    site.stage();
    let driver = offsite_testbed::ChromeDriver::start().expect("chromedriver (run scripts/test)");
    let downloads = root.join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let client = browser(&driver, &downloads).await;

    // A wrong password is refused without saying whether the address exists.
    sign_in(&client, &service, "it@contoso.example", "not the password").await;
    assert!(text_of(&client).await.contains("email address or password is not right"));

    // Sign in: a subscription's user lands on their subscription.
    sign_in(&client, &service, "it@contoso.example", PASSWORD_CONTOSO).await;
    let overview = client.current_url().await.unwrap();
    assert!(overview.path().ends_with(&format!("/portal/subscriptions/{}", site.tenant.id)), "{overview}");
    let page = text_of(&client).await;
    assert!(page.contains("Subscription contoso") && page.contains("fs01"), "{page}");

    // Download publish settings, and manage the subscription with them.
    client.find(Locator::Css("form[action$='/publish-settings'] button")).await.unwrap().click().await.unwrap();
    let publish = downloaded(&downloads, ".publishsettings");
    let vaults = offsite(["admin", "--publish-settings", utf8(&publish), "vault", "list", "--json"]).run().ok().json();
    assert_eq!(vaults[0]["name"], "main", "{vaults}");

    // Download vault credentials from the vault's page, and register a machine with them.
    click_and_load(&client, Locator::LinkText("main")).await;
    assert!(text_of(&client).await.contains("Vault main"));
    shoot(&client, "vault").await;
    client.find(Locator::Css("form[action$='/credentials'] button")).await.unwrap().click().await.unwrap();
    let credentials = downloaded(&downloads, ".VaultCredentials");
    let second = Agent::new(root, "fs02");
    second.register(&credentials, "fs02").ok();

    // The manual certificate path: a second machine's certgen finds the
    // application exists and makes its own key pair; its certificate is uploaded
    // in the portal, which shows the thumbprint the machine printed.
    let other_home = root.join("copy-computer-agent");
    let made = offsite([
        "certgen",
        "--agent-home",
        utf8(&other_home),
        "create-application",
        "--subscription",
        &site.tenant.id,
        "--publish-settings",
        utf8(&site.tenant.publish),
        "--params-out",
        utf8(&root.join("other-params.xml")),
    ])
    .run();
    assert!(made.stderr.contains("already has an offline-seeding application"), "{made}");
    // The page gives the challenge the export signs: the proof of possession.
    client.goto(&format!("{}/portal/subscriptions/{}/application", service.url, site.tenant.id)).await.unwrap();
    let export = client.find(Locator::Css("#export-cert")).await.unwrap().text().await.unwrap();
    let challenge = export.split("--challenge ").nth(1).and_then(|t| t.split_whitespace().next()).unwrap().to_string();
    let cer = root.join("other.cer");
    let exported = offsite([
        "certgen",
        "--agent-home",
        utf8(&other_home),
        "export-cert",
        "--challenge",
        &challenge,
        "--out",
        utf8(&cer),
        "--json",
    ])
    .run()
    .ok()
    .json();
    let thumbprint = exported["thumbprint"].as_str().unwrap().to_string();
    client.find(Locator::Css("#certificate")).await.unwrap().send_keys(utf8(&cer)).await.unwrap();
    click_and_load(&client, Locator::Css("form[enctype] button")).await;
    let shown = client.find(Locator::Css("#added-thumbprint")).await.unwrap().text().await.unwrap();
    assert_eq!(shown, thumbprint);
    assert!(text_of(&client).await.matches(&thumbprint).count() >= 2, "the thumbprint is listed with the others");
    shoot(&client, "application").await;
    let listed = site.tenant.admin(["application", "show", "--json"]).run().ok().json();
    assert!(listed.to_string().contains(&thumbprint), "the API lists the uploaded certificate: {listed}");

    // The import job, from Creating to Completed.
    let prepared = site.prepare_two_drives();
    let job_id = prepared["import_job"]["id"].as_str().unwrap().to_string();
    let drives = prepared["set"]["drives"].as_array().unwrap().len();
    let job_url = format!("{}/portal/import-jobs/{job_id}", service.url);
    wait_for_job_state(&client, &job_url, "Creating").await;
    site.ship("1Z999AA10123456784").ok();
    wait_for_job_state(&client, &job_url, "Shipping").await;
    let page = text_of(&client).await;
    assert!(page.contains("1Z999AA10123456784") && page.contains("Dock 4"), "{page}");

    // The operator receives the package in the portal (second browser: its own session).
    let operator = browser(&driver, &downloads).await;
    sign_in(&operator, &service, "ops@offsite.example", PASSWORD_OPERATOR).await;
    operator.goto(&format!("{}/portal/operator", service.url)).await.unwrap();
    let incoming = operator.find(Locator::Css("#incoming")).await.unwrap().text().await.unwrap();
    assert!(incoming.contains("1Z999AA10123456784") && incoming.contains(JOB), "{incoming}");
    shoot(&operator, "operator-incoming").await;
    click_and_load(&operator, Locator::Css("#incoming button")).await;
    wait_for_job_state(&client, &job_url, "Received").await;
    operator.goto(&format!("{}/portal/operator", service.url)).await.unwrap();
    let queue = operator.find(Locator::Css("#ingest")).await.unwrap().text().await.unwrap();
    assert_eq!(queue.matches(JOB).count(), drives, "every drive waits for ingest: {queue}");

    // Ingest runs at a station while the customer watches the page.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let station = {
        let drives: Vec<PathBuf> = (1..=drives as u32).map(|n| site.drive(n)).collect();
        let station_credentials = site.station.clone();
        let import_key = site.import_key.clone();
        std::thread::spawn(move || {
            for drive in drives {
                ingest(&station_credentials, &import_key, &drive).ok();
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        client.goto(&job_url).await.unwrap();
        let Ok(shown) = client.find(Locator::Css("#job-state")).await else {
            panic!(
                "the import job page failed during ingest: {}\nservice log:\n{}",
                text_of(&client).await,
                service.log()
            );
        };
        let state = shown.text().await.unwrap();
        seen.lock().unwrap().push(state.clone());
        if state == "Completed" {
            break;
        }
        assert!(Instant::now() < deadline, "the job never completed; seen {:?}", seen.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    station.join().expect("the ingest station");
    let seen = seen.lock().unwrap().clone();
    assert!(seen.first().is_some_and(|s| s == "Received" || s == "Transferring"), "{seen:?}");
    // Every drive's progress bar is full, and the timeline holds every job state.
    let bars = client.find_all(Locator::Css("progress")).await.unwrap();
    assert_eq!(bars.len(), drives);
    for bar in bars {
        assert_eq!(bar.attr("value").await.unwrap().as_deref(), Some("100"));
    }
    let timeline = text_of(&client).await;
    for state in ["creating", "shipping", "received", "transferring", "packaging", "completed"] {
        assert!(timeline.contains(state), "the timeline lacks {state}: {timeline}");
    }
    shoot(&client, "import-job").await;

    // Adoption and an incremental: the charts have their points. The agent now
    // has a schedule, and tells the service when it runs next.
    site.agent.cmd(["schedule", "set", "--times", "02:00"]).run().ok();
    write(&site.source.join("docs/changed.txt"), &text(30_000, 5));
    let incremental = site.agent.backup();
    assert_eq!(incremental["report"]["state"], "completed", "{incremental}");
    client.goto(&format!("{}/portal/subscriptions/{}", service.url, site.tenant.id)).await.unwrap();
    let charts = client.find_all(Locator::Css("figure svg")).await.unwrap();
    assert_eq!(charts.len(), 2, "storage used over time and bytes per backup");
    let points = client.find_all(Locator::Css("figure svg circle")).await.unwrap();
    assert!(points.len() >= 2, "the adopted seed and the incremental: {} points", points.len());
    let bars = client.find_all(Locator::Css("figure svg rect")).await.unwrap();
    assert!(!bars.is_empty(), "bytes per backup has bars");
    shoot(&client, "subscription").await;
    client.set_window_size(390, 844).await.unwrap();
    shoot(&client, "subscription-phone").await;
    client.set_window_size(1280, 1000).await.unwrap();
    client.goto(&format!("{}/portal/vaults/{}", service.url, vault_id(&site))).await.unwrap();
    let vault_page = text_of(&client).await;
    assert!(vault_page.contains("offline seed") && vault_page.contains("fs02"), "{vault_page}");
    let next = client.find_all(Locator::Css("td.next-backup")).await.unwrap();
    let mut shown = Vec::new();
    for cell in next {
        shown.push(cell.text().await.unwrap());
    }
    shown.sort();
    assert!(shown.len() == 2 && shown[0].ends_with(":00 UTC") && shown[1] == "no schedule", "{shown:?}");
    sign_out(&client).await;

    // Another subscription's user: none of contoso's pages, by link or guessed URL.
    sign_in(&client, &service, "it@fabrikam.example", PASSWORD_FABRIKAM).await;
    assert!(text_of(&client).await.contains("Subscription fabrikam"));
    let guessed = [
        format!("/portal/subscriptions/{}", site.tenant.id),
        format!("/portal/subscriptions/{}/application", site.tenant.id),
        format!("/portal/subscriptions/{}/storage", site.tenant.id),
        format!("/portal/vaults/{}", vault_id(&site)),
        format!("/portal/import-jobs/{job_id}"),
        "/portal/operator".to_string(),
    ];
    for path in &guessed {
        client.goto(&format!("{}{path}", service.url)).await.unwrap();
        let page = text_of(&client).await;
        assert!(page.contains("does not exist, or you may not see it"), "{path}: {page}");
        assert!(!page.contains("contoso") && !page.contains(JOB), "{path} shows contoso's data: {page}");
    }
    shoot(&client, "not-found").await;

    operator.goto(&format!("{}/portal/", service.url)).await.unwrap();
    assert!(text_of(&operator).await.contains("fabrikam"));
    shoot(&operator, "operator-subscriptions").await;
    client.close().await.unwrap();
    operator.close().await.unwrap();
}

fn vault_id(site: &Site) -> String {
    let vaults = site.tenant.admin(["vault", "list", "--json"]).run().ok().json();
    vaults[0]["id"].as_str().unwrap().to_string()
}
