//! The browser harness: Debian's `chromium`, headless, driven over
//! WebDriver by `chromedriver` (both installed by `.ci/run` when missing).
//!
//! [`Browser::start`] starts a `chromedriver` of the test's own on a free
//! port and opens a session; [`Browser::screenshot`] saves a PNG under
//! `<target>/tmp/browser-screenshots/`; [`Browser::close`] ends both. A
//! test that panics before closing still stops its driver and the browser
//! it started: they run in a process group of their own, killed on drop.

use crate::common::wait_until;
use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// The widths every page must hold: a laptop and a phone.
pub const DESKTOP: (u32, u32) = (1280, 900);
pub const PHONE: (u32, u32) = (390, 844);

/// A headless Chromium session with its own driver.
pub struct Browser {
    pub client: Client,
    /// Ends the driver and the browser when the test is done with them.
    _driver: Driver,
    /// Prefixes the screenshots' file names: the test's name.
    test: String,
}

impl Browser {
    /// A session at [`DESKTOP`] size, for the test named `test`. Panics,
    /// saying what to install, when the driver is missing.
    pub async fn start(test: &str) -> Browser {
        assert!(
            std::path::Path::new(CHROMEDRIVER).exists(),
            "{CHROMEDRIVER} is missing: apt-get install -y chromium chromium-driver"
        );
        // A free port: bound, read and released; the driver binds it next.
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut driver = Command::new(CHROMEDRIVER);
        driver
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so drop can end the browser with it.
            .process_group(0);
        let driver = Driver(driver.spawn().expect("start chromedriver"));
        wait_until("chromedriver listens", async || {
            TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok()
        })
        .await;
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    // Containers run tests as root, where Chromium's
                    // sandbox cannot start.
                    "--no-sandbox",
                    "--disable-dev-shm-usage",
                    "--disable-gpu",
                    "--hide-scrollbars",
                    format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
                ],
            },
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!("an object literal")
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| panic!("open a session on chromedriver: {e}"));
        Browser {
            client,
            _driver: driver,
            test: test.to_owned(),
        }
    }

    /// Resizes the window (the viewport, headless) to `(width, height)`.
    pub async fn resize(&self, (width, height): (u32, u32)) {
        self.client
            .set_window_size(width, height)
            .await
            .expect("resize the window");
    }

    /// Whether the page is wider than the window: a layout that breaks.
    pub async fn overflows_horizontally(&self) -> bool {
        let wider = self
            .client
            .execute(
                "return document.documentElement.scrollWidth > window.innerWidth;",
                vec![],
            )
            .await
            .expect("measure the page");
        wider.as_bool().expect("a boolean")
    }

    /// Saves what the window shows as `<test>-<name>.png` in the
    /// screenshots folder, and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("take a screenshot");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("create the screenshots folder");
        let path = dir.join(format!("{}-{name}.png", self.test));
        std::fs::write(&path, png).expect("save the screenshot");
        path
    }

    /// Ends the session (the browser quits) and the driver.
    pub async fn close(self) {
        self.client.clone().close().await.expect("end the session");
        // The driver goes on drop.
    }
}

/// A running `chromedriver`, leader of the process group the browser it
/// starts joins.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole group, by its id: the driver and any browser it left.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.wait();
    }
}

/// `<target>/tmp/browser-screenshots`: the test's output folder, wherever
/// cargo puts its output.
pub fn screenshot_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser-screenshots")
}
