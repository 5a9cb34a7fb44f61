//! The stylesheet and script, compiled into the binary and served under a
//! prefix that names their content (`/static/<hash>/app.css`): a browser
//! may keep them for a year, and a new build, with other content, gets
//! other URLs, so no one runs yesterday's script against today's pages.

use actix_web::http::header::{self, ContentType, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// The embedded files: name, content type, bytes.
const FILES: [(&str, &str, &[u8]); 2] = [
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../static/app.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/app.js"),
    ),
];

/// The first 12 hex digits of the SHA-256 of every file, in order.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    let mut hash = Sha256::new();
    for (name, _, bytes) in FILES {
        hash.update(name.as_bytes());
        hash.update(bytes);
    }
    hex::encode(hash.finalize())[..12].to_owned()
});

/// `/static/<version>`, which pages put before the file names.
static PREFIX: LazyLock<String> = LazyLock::new(|| format!("/static/{}", *VERSION));

/// The URL prefix of the current assets.
pub fn prefix() -> &'static str {
    &PREFIX
}

/// `GET /static/{version}/{name}`. The current version is cached for a
/// year as immutable; another version (a page rendered by an older build,
/// still open in a tab) gets the current file, to be revalidated each
/// time. The ETag lets revalidation answer 304 without the body.
pub async fn serve(req: HttpRequest, path: web::Path<(String, String)>) -> HttpResponse {
    let (version, name) = path.into_inner();
    let Some((_, content_type, bytes)) = FILES.iter().find(|(n, _, _)| *n == name) else {
        return super::not_found_page();
    };
    let etag = format!("\"{}\"", *VERSION);
    let cache = if version == *VERSION {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut response = if matches {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::CACHE_CONTROL, cache))
        .insert_header((header::ETAG, etag))
        .insert_header((
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ));
    if matches {
        return response.finish();
    }
    response
        .insert_header(ContentType(
            content_type.parse().expect("a valid MIME type"),
        ))
        .body(*bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::App;
    use actix_web::http::StatusCode;
    use actix_web::test::{TestRequest, call_service, init_service, read_body};

    #[test]
    fn the_prefix_names_the_content() {
        assert_eq!(prefix().len(), "/static/".len() + 12);
        assert!(
            prefix()["/static/".len()..]
                .bytes()
                .all(|b| b.is_ascii_hexdigit())
        );
    }

    #[actix_web::test]
    async fn assets_are_cached_by_version_and_revalidated_by_etag() {
        let app = init_service(App::new().configure(crate::web::routes)).await;
        let current = format!("{}/app.css", prefix());
        let res = call_service(&app, TestRequest::get().uri(&current).to_request()).await;
        assert_eq!(res.status(), StatusCode::OK);
        let headers = res.headers().clone();
        assert_eq!(
            headers.get(header::CONTENT_TYPE).unwrap(),
            "text/css; charset=utf-8"
        );
        assert!(
            headers
                .get(header::CACHE_CONTROL)
                .unwrap()
                .to_str()
                .unwrap()
                .contains("immutable")
        );
        assert!(!read_body(res).await.is_empty());

        let old = call_service(
            &app,
            TestRequest::get().uri("/static/0000/app.js").to_request(),
        )
        .await;
        assert_eq!(old.status(), StatusCode::OK);
        assert_eq!(
            old.headers().get(header::CACHE_CONTROL).unwrap(),
            "no-cache"
        );

        let again = TestRequest::get()
            .uri(&current)
            .insert_header((
                header::IF_NONE_MATCH,
                headers.get(header::ETAG).unwrap().clone(),
            ))
            .to_request();
        let res = call_service(&app, again).await;
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
        assert!(read_body(res).await.is_empty());

        let missing = format!("{}/nope.js", prefix());
        let res = call_service(&app, TestRequest::get().uri(&missing).to_request()).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }
}
