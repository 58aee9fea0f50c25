//! The web console against the real services, driven by a real headless Chromium: an
//! approver follows the link in the real quarantine email, signs in, searches the held
//! objects, allows two of four and restores one from the recycle bin; a page that went
//! stale is refused; a reader sees no buttons and a forged post is refused. Screenshots of
//! the quarantine page are kept in target/artifacts.

use std::time::Duration;

use syncguard_console::ServerTls;
use syncguard_e2e::browser::Browser;
use syncguard_e2e::directory::{push_snapshot, user};
use syncguard_e2e::smtp::{SmtpServer, free_port};
use syncguard_e2e::transport::TestTls;
use syncguard_e2e::{Suite, SuiteOptions, wait_for};
use syncguard_notifier::settings::{Delivery, MailSettings};
use syncguard_proto::v1::{self, ActionKind, object_ref};

use crate::jobs::push_job;
use crate::quarantine::{quarantine_of, quarantine_of_id};

/// Four people leave: two contractors and two employees.
const LEAVERS: [(usize, &str); 4] = [
    (1, "Contractor Ann"),
    (2, "Contractor Bob"),
    (3, "Dana Employee"),
    (4, "Eve Employee"),
];

fn person(n: usize, name: &str) -> v1::SourceObject {
    let mut object = user(n);
    object.attributes.insert(
        "cn".into(),
        v1::AttributeValues {
            values: vec![name.into()],
        },
    );
    object
}

fn staff() -> Vec<v1::SourceObject> {
    let mut people: Vec<_> = LEAVERS.iter().map(|(n, name)| person(*n, name)).collect();
    people.push(person(5, "Frank Stays"));
    people.push(person(6, "Grace Stays"));
    people
}

fn anchor(n: usize) -> String {
    format!("u-{n:05}")
}

/// A job with a threshold of 3 whose second read drops the four leavers; returns the job.
async fn quarantined_job(suite: &Suite) -> anyhow::Result<String> {
    let mut spec = push_job("HR to directory");
    spec.protection_rules = vec![v1::ProtectionRule {
        counted_actions: vec![ActionKind::Delete as i32, ActionKind::Disable as i32],
        max_count: Some(3),
        ..Default::default()
    }];
    let mut ingest = suite.ingest(Some(&suite.tokens.operator));
    let job_id = ingest
        .create_job(v1::CreateJobRequest { spec: Some(spec) })
        .await?
        .into_inner()
        .job_id;
    push_snapshot(&mut ingest, &job_id, &staff()).await?;
    let stayers: Vec<_> = staff().into_iter().skip(LEAVERS.len()).collect();
    push_snapshot(&mut ingest, &job_id, &stayers).await?;
    Ok(job_id)
}

async fn deleted_anchors(suite: &Suite, job_id: &str) -> anyhow::Result<Vec<String>> {
    let mut anchors: Vec<String> = suite
        .retention(Some(&suite.tokens.reader))
        .list_deleted_objects(v1::ListDeletedObjectsRequest {
            job_id: job_id.into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .objects
        .into_iter()
        .map(|object| object.anchor)
        .collect();
    anchors.sort();
    Ok(anchors)
}

async fn object(suite: &Suite, job_id: &str, n: usize) -> anyhow::Result<v1::DirectoryObject> {
    Ok(suite
        .retention(Some(&suite.tokens.reader))
        .get_object(v1::GetObjectRequest {
            object: Some(v1::ObjectRef {
                by: Some(object_ref::By::Anchor(v1::AnchorRef {
                    job_id: job_id.into(),
                    anchor: anchor(n),
                })),
            }),
            ..Default::default()
        })
        .await?
        .into_inner())
}

/// The console link in a delivered message (quoted-printable undone).
fn console_link(message: &str, console: &str) -> Option<String> {
    let text = message
        .replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=");
    let prefix = format!("{console}/quarantines/");
    let start = text.find(&prefix)?;
    let id: String = text[start + prefix.len()..]
        .chars()
        .take_while(|c| c.is_ascii_hexdigit() || *c == '-')
        .collect();
    Some(format!("{prefix}{id}"))
}

async fn sign_in(browser: &Browser, token: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        browser.url().await?.contains("/signin"),
        "expected the sign-in page, got {}",
        browser.url().await?
    );
    browser.type_into("#token", token).await?;
    browser.follow("#sign-in").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approver_allows_two_of_four_from_the_email_and_restores_one() -> anyhow::Result<()> {
    let smtp_port = free_port();
    let smtp = SmtpServer::accepting(smtp_port).await?;
    let console_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let console = format!("http://{}", console_listener.local_addr()?);
    let mut suite = Suite::start_with(SuiteOptions {
        mail: Some(MailSettings {
            delivery: Delivery::Smtp(format!("smtp://127.0.0.1:{smtp_port}")),
            poll_interval: Duration::from_millis(200),
            console_url: Some(console.clone()),
            ..MailSettings::default()
        }),
        ..Default::default()
    })
    .await?;
    assert_eq!(suite.start_console(console_listener).await?, console);
    let job_id = quarantined_job(&suite).await?;
    let quarantine = quarantine_of(&suite, &job_id).await?;

    let message = wait_for("the quarantine email", Duration::from_secs(30), || {
        let messages = smtp.messages();
        async move { messages.into_iter().next() }
    })
    .await?;
    let link = console_link(&message, &console)
        .ok_or_else(|| anyhow::anyhow!("no console link in the email: {message}"))?;
    assert_eq!(
        link,
        format!("{console}/quarantines/{}", quarantine.quarantine_id)
    );

    let browser = Browser::start().await?;
    browser.goto(&link).await?;
    sign_in(&browser, &suite.tokens.approver).await?;
    assert_eq!(
        browser.url().await?,
        link,
        "sign-in returns to the email's page"
    );
    let page = browser.text().await?;
    assert!(page.contains("Quarantine of HR to directory"), "{page}");
    assert!(page.contains("4 user deletes"), "the counts: {page}");
    assert!(page.contains("1 over the limit"), "by how much: {page}");
    assert!(page.contains(&quarantine.digest), "the digest: {page}");
    assert!(page.contains("0 of 1 required"), "the approvals: {page}");
    assert!(page.contains("restorable until"), "restorability: {page}");
    assert_eq!(browser.count("#held tbody tr").await?, 4);
    browser
        .screenshot("console-quarantine-approver.png")
        .await?;
    browser.resize(390, 844).await?;
    browser.screenshot("console-quarantine-phone.png").await?;
    browser.resize(1280, 1000).await?;

    // The job's overview: its health, its rules and the cycles' deletes against the line.
    browser.goto(&format!("{console}/jobs")).await?;
    let jobs = browser.text().await?;
    assert!(
        jobs.contains("HR to directory") && jobs.contains("quarantined"),
        "{jobs}"
    );
    browser.goto(&format!("{console}/jobs/{job_id}")).await?;
    let overview = browser.text().await?;
    assert!(overview.contains("Review the quarantine"), "{overview}");
    assert!(overview.contains("more than 3"), "the rule: {overview}");
    assert_eq!(
        browser.count("svg rect").await?,
        4,
        "two cycles, two bars each"
    );
    assert!(overview.contains("threshold 3"), "the line: {overview}");
    browser.goto(&link).await?;

    browser.type_into("#search", "contractor").await?;
    browser.follow("#search-button").await?;
    assert_eq!(browser.count("#held tbody tr").await?, 2, "two contractors");
    let page = browser.text().await?;
    assert!(
        page.contains("Contractor Ann") && page.contains("Contractor Bob"),
        "{page}"
    );
    assert!(!page.contains("Dana Employee"), "{page}");
    browser.click(&format!("#tick-{}", anchor(1))).await?;
    browser.click(&format!("#tick-{}", anchor(2))).await?;
    browser.follow("#allow-ticked").await?;
    let confirm = browser.text().await?;
    assert!(
        confirm.contains("Allow 2 of the 4 held objects?"),
        "{confirm}"
    );
    assert!(
        confirm.contains("The other 2 held actions are rejected"),
        "{confirm}"
    );
    assert_eq!(
        deleted_anchors(&suite, &job_id).await?,
        Vec::<String>::new(),
        "nothing before confirming"
    );
    browser
        .type_into("#reason", "contracts ended (HR ticket 4711)")
        .await?;
    browser.follow("#confirm").await?;
    let done = browser.text().await?;
    assert!(done.contains("Allowed: 2 applied, 2 rejected"), "{done}");

    let deleted = wait_for("the two soft deletes", Duration::from_secs(30), || {
        let suite = &suite;
        let job_id = job_id.clone();
        async move {
            let anchors = deleted_anchors(suite, &job_id).await.ok()?;
            (anchors.len() == 2).then_some(anchors)
        }
    })
    .await?;
    assert_eq!(deleted, vec![anchor(1), anchor(2)]);
    for kept in [3, 4, 5] {
        let kept = object(&suite, &job_id, kept).await?;
        assert!(kept.deleted_at.is_none(), "{} stays: {kept:?}", kept.anchor);
    }
    let ann_before = object(&suite, &job_id, 1).await?;
    assert!(ann_before.deleted_at.is_some());

    browser
        .goto(&format!("{console}/jobs/{job_id}/deleted"))
        .await?;
    assert_eq!(browser.count("#deleted tbody tr").await?, 2);
    browser.follow(&format!("#restore-{}", anchor(1))).await?;
    assert!(browser.text().await?.contains("Restore 1 object"));
    browser.type_into("#reason", "Ann was extended").await?;
    browser.follow("#confirm").await?;
    assert_eq!(browser.text_of("#restored-id").await?, ann_before.object_id);
    let ann = object(&suite, &job_id, 1).await?;
    assert!(ann.deleted_at.is_none(), "restored: {ann:?}");
    assert_eq!(ann.object_id, ann_before.object_id, "with its id");
    assert_eq!(deleted_anchors(&suite, &job_id).await?, vec![anchor(2)]);

    // The two rejected objects are pinned; releasing one leaves the other.
    browser
        .goto(&format!("{console}/jobs/{job_id}/pins"))
        .await?;
    assert_eq!(browser.count("#pins tbody tr").await?, 2);
    browser
        .click(&format!("#pins input[value='{}']", anchor(3)))
        .await?;
    browser.follow("#release").await?;
    assert!(browser.text().await?.contains("Release 1 pins?"));
    browser.type_into("#reason", "Dana really left").await?;
    browser.follow("#confirm").await?;
    assert!(browser.text().await?.contains("Released 1 pins."));
    let pins = suite
        .gate(Some(&suite.tokens.reader))
        .list_pins(v1::ListPinsRequest {
            job_id: job_id.clone(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .pins;
    assert_eq!(
        pins.iter()
            .map(|pin| pin.anchor.clone())
            .collect::<Vec<_>>(),
        vec![anchor(4)]
    );

    // The provisioning log names the person, not the console.
    browser
        .goto(&format!("{console}/jobs/{job_id}/log?anchor={}", anchor(1)))
        .await?;
    let log = browser.text().await?;
    assert!(log.contains("Ann was extended"), "{log}");
    assert!(log.contains("approver"), "{log}");
    browser.follow("header button").await?;
    assert!(browser.text().await?.contains("You are signed out."));
    browser.goto(&link).await?;
    assert!(
        browser.url().await?.contains("/signin"),
        "signed out for good"
    );

    browser.stop().await?;
    suite.stop().await?;
    smtp.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_page_is_refused_and_a_reader_sees_no_buttons() -> anyhow::Result<()> {
    let console_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let mut suite = Suite::start().await?;
    let console = suite.start_console(console_listener).await?;
    let job_id = quarantined_job(&suite).await?;
    let quarantine = quarantine_of(&suite, &job_id).await?;
    let page_url = format!("{console}/quarantines/{}", quarantine.quarantine_id);

    // A reader reads the quarantine but is offered no decision.
    let browser = Browser::start().await?;
    browser.goto(&page_url).await?;
    sign_in(&browser, &suite.tokens.reader).await?;
    assert_eq!(browser.count("#held tbody tr").await?, 4);
    assert_eq!(browser.count("#decide").await?, 0, "no decision form");
    assert_eq!(browser.count("input[type=checkbox]").await?, 0);
    assert!(
        browser
            .text()
            .await?
            .contains("approvers and admins decide it")
    );
    browser.screenshot("console-quarantine-reader.png").await?;
    // Posting the form anyway (with the reader's own session and CSRF token) is refused
    // by the gate, and nothing changes.
    let cookie = browser.cookie("syncguard_session").await?;
    let csrf = browser.attribute("input[name=csrf]", "value").await?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let forged = http
        .post(format!("{page_url}/decide"))
        .header("cookie", format!("syncguard_session={cookie}"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("intent", "allow-all"),
            ("digest", quarantine.digest.as_str()),
            ("reason", "forged"),
        ])
        .send()
        .await?;
    assert_eq!(forged.status(), 403);
    assert!(
        forged
            .text()
            .await?
            .contains("Your role does not allow this")
    );
    // Without the CSRF token the console refuses before any call.
    let no_csrf = http
        .post(format!("{page_url}/decide"))
        .header("cookie", format!("syncguard_session={cookie}"))
        .form(&[
            ("intent", "allow-all"),
            ("digest", quarantine.digest.as_str()),
        ])
        .send()
        .await?;
    assert_eq!(no_csrf.status(), 403);
    assert!(no_csrf.text().await?.contains("CSRF"));
    assert_eq!(
        quarantine_of(&suite, &job_id).await?.digest,
        quarantine.digest
    );
    browser.follow("header button").await?;

    // An approver's page goes stale: another approver rejects one object meanwhile.
    browser.goto(&page_url).await?;
    sign_in(&browser, &suite.tokens.approver).await?;
    browser.click(&format!("#tick-{}", anchor(1))).await?;
    suite
        .gate(Some(&suite.tokens.admin))
        .reject_deletes(v1::RejectDeletesRequest {
            quarantine_id: quarantine.quarantine_id.clone(),
            digest: quarantine.digest.clone(),
            reason: "Eve stays, says her manager".into(),
            anchors: vec![anchor(4)],
        })
        .await?;
    browser.follow("#allow-ticked").await?;
    browser.type_into("#reason", "contract ended").await?;
    browser.follow("#confirm").await?;
    let refused = browser.text().await?;
    assert!(
        refused.contains("Refused: the quarantine changed"),
        "{refused}"
    );
    assert!(
        refused.contains("does not match"),
        "the gate's words: {refused}"
    );
    browser.screenshot("console-quarantine-stale.png").await?;
    assert!(
        deleted_anchors(&suite, &job_id).await?.is_empty(),
        "nothing applied"
    );
    let now = quarantine_of(&suite, &job_id).await?;
    assert_ne!(now.digest, quarantine.digest);
    // Reopened, the page shows what is held now; the approver restarts the job instead.
    browser.follow("#back").await?;
    assert_eq!(browser.url().await?, page_url);
    assert!(browser.text().await?.contains(&now.digest));
    browser.follow("#restart").await?;
    assert!(browser.text().await?.contains("Restart the job?"));
    browser
        .type_into("#reason", "the HR export is being fixed")
        .await?;
    browser.follow("#confirm").await?;
    assert!(
        browser
            .text()
            .await?
            .contains("The held cycle is superseded")
    );
    let superseded = quarantine_of_id(&suite, &quarantine.quarantine_id).await?;
    assert_eq!(superseded.state, v1::QuarantineState::Superseded as i32);

    browser.stop().await?;
    suite.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_sets_a_strict_cookie_and_refuses_unknown_and_service_tokens() -> anyhow::Result<()>
{
    let mut suite = Suite::start().await?;
    let console = suite
        .start_console(std::net::TcpListener::bind("127.0.0.1:0")?)
        .await?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let health = http.get(format!("{console}/healthz")).send().await?;
    assert_eq!(health.status(), 200);

    let jobs = http.get(format!("{console}/jobs")).send().await?;
    assert_eq!(jobs.status(), 303);
    assert_eq!(jobs.headers()["location"], "/signin?next=%2Fjobs");

    for (token, says) in [
        ("not-a-token-of-syncguard", "does not know that token"),
        (suite.tokens.service.as_str(), "service's token"),
    ] {
        let refused = http
            .post(format!("{console}/signin"))
            .form(&[("token", token), ("next", "/jobs")])
            .send()
            .await?;
        assert_eq!(refused.status(), 401);
        assert!(refused.headers().get("set-cookie").is_none());
        let body = refused.text().await?;
        assert!(body.contains(says), "{body}");
        assert!(!body.contains(token), "the token is never echoed");
    }

    let signed_in = http
        .post(format!("{console}/signin"))
        .form(&[
            ("token", suite.tokens.reader.as_str()),
            ("next", "https://evil.example.com/"),
        ])
        .send()
        .await?;
    assert_eq!(signed_in.status(), 303);
    assert_eq!(signed_in.headers()["location"], "/jobs", "never off-site");
    let cookie = signed_in.headers()["set-cookie"].to_str()?.to_owned();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(cookie.contains("Max-Age="), "{cookie}");
    let session = cookie.split(';').next().unwrap_or_default().to_owned();
    let jobs = http
        .get(format!("{console}/jobs"))
        .header("cookie", &session)
        .send()
        .await?;
    assert_eq!(jobs.status(), 200);
    assert!(
        jobs.headers()["content-security-policy"]
            .to_str()?
            .contains("default-src 'none'")
    );
    suite.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_over_tls_the_session_cookie_is_secure() -> anyhow::Result<()> {
    let certificates = TestTls::generate(false)?;
    let paths = certificates.paths().clone();
    let variables = [
        (
            "SYNCGUARD_TLS_CERT",
            paths.server_cert.display().to_string(),
        ),
        ("SYNCGUARD_TLS_KEY", paths.server_key.display().to_string()),
    ];
    let serve_tls = ServerTls::from_lookup(&|name: &str| {
        variables
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.clone())
    })?
    .expect("a certificate and key");
    let mut suite = Suite::start().await?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    suite
        .start_console_with(listener, |config| config.serve_tls = Some(serve_tls))
        .await?;
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(&paths.ca)?)?)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let console = format!("https://127.0.0.1:{port}");
    assert_eq!(
        https
            .get(format!("{console}/healthz"))
            .send()
            .await?
            .status(),
        200
    );
    let signed_in = https
        .post(format!("{console}/signin"))
        .form(&[("token", suite.tokens.approver.as_str()), ("next", "/jobs")])
        .send()
        .await?;
    assert_eq!(signed_in.status(), 303);
    let cookie = signed_in.headers()["set-cookie"].to_str()?.to_owned();
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(
        reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
            .await
            .map(|answer| !answer.status().is_success())
            .unwrap_or(true),
        "no plaintext answer on the TLS port"
    );
    suite.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_held_actions_are_searched_by_anchor_name_and_reason() -> anyhow::Result<()> {
    let suite = Suite::start().await?;
    let job_id = quarantined_job(&suite).await?;
    let search = |text: String| {
        let mut gate = suite.gate(Some(&suite.tokens.reader));
        let job_id = job_id.clone();
        async move {
            gate.get_quarantine(v1::GetQuarantineRequest {
                job_id,
                search: text,
                ..Default::default()
            })
            .await
            .map(|answer| {
                answer
                    .into_inner()
                    .held
                    .into_iter()
                    .filter_map(|held| held.action.map(|action| action.anchor))
                    .collect::<Vec<_>>()
            })
        }
    };
    assert_eq!(
        search("CONTRACTOR".into()).await?,
        vec![anchor(1), anchor(2)]
    );
    assert_eq!(search(anchor(3)).await?, vec![anchor(3)]);
    assert_eq!(search("removed from source".into()).await?.len(), 4);
    assert!(
        search("%".into()).await?.is_empty(),
        "wildcards are literal"
    );
    assert_eq!(search(String::new()).await?.len(), 4, "no search: all held");
    let too_long = search("x".repeat(201)).await.expect_err("refused");
    assert_eq!(too_long.code(), tonic::Code::InvalidArgument);
    assert!(
        too_long.message().contains("search"),
        "{}",
        too_long.message()
    );
    suite.stop().await
}
