//! The web UI over a real socket: the pages served without a session, the
//! HTML 404 outside `/api` (JSON within), and, in a real headless
//! Chromium, the login page at a laptop's and a phone's width.

use crate::browser::{Browser, DESKTOP, PHONE};
use crate::common::TestDb;
use actix_web::http::StatusCode;
use fantoccini::Locator;
use mesher::Mesher;

async fn start(t: &TestDb) -> Mesher {
    let mut config = t.config();
    config.http.addr = "127.0.0.1:0".parse().unwrap();
    mesher::start(&config).await.expect("start mesher")
}

/// Status, content type and body of `GET path`.
async fn get(mesher: &Mesher, path: &str) -> (StatusCode, String, String) {
    let url = format!("http://{}{path}", mesher.http_addr);
    let mut res = awc::Client::default()
        .get(&url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let content_type = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = res.body().await.expect("body");
    (
        res.status(),
        content_type,
        String::from_utf8(body.to_vec()).expect("UTF-8"),
    )
}

#[actix::test]
async fn pages_without_a_session_and_the_404_page() {
    let t = TestDb::new().await;
    let mesher = start(&t).await;

    for (path, heading) in [
        ("/login", "<h1>Log in</h1>"),
        ("/register", "<h1>Create an account</h1>"),
    ] {
        let (status, content_type, body) = get(&mesher, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(content_type, "text/html; charset=utf-8", "{path}");
        assert!(body.contains(heading), "{path}: {body}");
    }

    // People browsing get the 404 page; API clients keep their JSON.
    for path in ["/no-such-page", "/projects/%3Cscript%3E", "/apiary"] {
        let (status, content_type, body) = get(&mesher, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(content_type, "text/html; charset=utf-8", "{path}");
        assert!(body.contains("Page not found"), "{path}");
    }
    for path in ["/api", "/api/v1/nothing", "/api/1/nothing/"] {
        let (status, content_type, _) = get(&mesher, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(content_type, "application/json", "{path}");
    }

    // The stylesheet the pages link is served.
    let (_, _, login) = get(&mesher, "/login").await;
    let css = login
        .split("href=\"")
        .find_map(|s| s.split('"').next().filter(|h| h.ends_with("app.css")))
        .expect("a stylesheet link");
    let (status, content_type, _) = get(&mesher, css).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "text/css; charset=utf-8");

    mesher.shutdown().await.unwrap();
}

#[actix::test]
async fn the_login_page_in_a_real_browser() {
    let t = TestDb::new().await;
    let mesher = start(&t).await;
    let browser = Browser::start("login").await;
    let client = &browser.client;

    client
        .goto(&format!("http://{}/login", mesher.http_addr))
        .await
        .expect("open the login page");
    assert_eq!(client.title().await.unwrap(), "Log in · Mesher");
    let label = client
        .find(Locator::Css("label[for=email]"))
        .await
        .expect("the email field's label");
    assert_eq!(label.text().await.unwrap(), "Email");
    // The stylesheet applied (served, and allowed by the page's policy):
    // the primary button has the accent background, not the default.
    let styled = client
        .execute(
            "return getComputedStyle(document.querySelector('button.primary')).backgroundColor;",
            vec![],
        )
        .await
        .unwrap();
    assert_ne!(styled.as_str(), Some("rgba(0, 0, 0, 0)"), "unstyled page");

    for (size, name) in [(DESKTOP, "desktop"), (PHONE, "phone")] {
        browser.resize(size).await;
        assert!(
            !browser.overflows_horizontally().await,
            "the login page is wider than {size:?}"
        );
        let shot = browser.screenshot(name).await;
        assert!(std::fs::metadata(&shot).unwrap().len() > 0, "{shot:?}");
    }

    browser.close().await;
    mesher.shutdown().await.unwrap();
}
