//! The page shell every page shares: one stylesheet inlined (no fonts, no CDN, no script),
//! the navigation, who is signed in and the sign-out button.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::sessions::Session;

/// Readable on a laptop and a phone: one column, tables that scroll sideways, visible focus.
const STYLE: &str = r#"
*{box-sizing:border-box}
body{margin:0;font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1f24;background:#f6f7f9}
header{background:#1d3557;color:#fff;padding:.6rem 1rem;display:flex;flex-wrap:wrap;gap:.6rem 1.2rem;align-items:center}
header a{color:#fff}
header .who{margin-left:auto;display:flex;gap:.6rem;align-items:center;flex-wrap:wrap}
main{max-width:72rem;margin:0 auto;padding:1rem}
h1{font-size:1.45rem;margin:.4rem 0 1rem}
h2{font-size:1.15rem;margin:1.6rem 0 .6rem}
a{color:#0b5cad}
a:focus,button:focus,input:focus,select:focus,textarea:focus{outline:3px solid #f4a261;outline-offset:1px}
.card{background:#fff;border:1px solid #d8dde3;border-radius:6px;padding:1rem;margin:0 0 1rem}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:.4rem .55rem;border-bottom:1px solid #e3e7ec;vertical-align:top}
th{background:#eef1f5;font-weight:600;white-space:nowrap}
.badge{display:inline-block;padding:.05rem .5rem;border-radius:1rem;font-size:.85rem;font-weight:600;background:#e3e7ec}
.badge.quarantined,.badge.open,.badge.failed{background:#fde2e1;color:#9b1c1c}
.badge.healthy,.badge.completed,.badge.allowed{background:#dcf3e3;color:#14532d}
.notice{border-left:5px solid #0b5cad;background:#eaf2fb;padding:.7rem 1rem;margin:0 0 1rem}
.notice.error{border-color:#b42318;background:#fdecea}
.notice.ok{border-color:#1a7f37;background:#e6f4ea}
form.inline{display:inline}
.row{display:flex;flex-wrap:wrap;gap:.5rem;align-items:end;margin:.5rem 0}
label{display:flex;flex-direction:column;font-size:.9rem;gap:.15rem}
input[type=text],input[type=password],input[type=search],input[type=date],select,textarea{font:inherit;padding:.4rem .5rem;border:1px solid #aab4bf;border-radius:4px;min-width:12rem}
textarea{width:100%;min-height:5rem}
button{font:inherit;padding:.45rem .9rem;border-radius:4px;border:1px solid #1d3557;background:#1d3557;color:#fff;cursor:pointer}
button.secondary{background:#fff;color:#1d3557}
button.danger{background:#b42318;border-color:#b42318}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem;margin:0}
dt{font-weight:600}
dd{margin:0;overflow-wrap:anywhere}
code{font-size:.9em;overflow-wrap:anywhere}
.muted{color:#5b6673}
.when{white-space:nowrap}
svg text{font:12px system-ui,sans-serif}
@media (max-width:40rem){main{padding:.6rem}h1{font-size:1.2rem}dl{grid-template-columns:1fr}}
"#;

/// A whole page: `title` in the tab and as the heading, `viewer` in the header.
pub fn page(title: &str, viewer: Option<&Session>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · syncguard" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    strong { "syncguard" }
                    @if viewer.is_some() {
                        nav { a href="/jobs" { "Jobs" } }
                    }
                    @if let Some(viewer) = viewer {
                        div.who {
                            span { "Signed in as " strong { (viewer.principal.name) } " (" (viewer.principal.role.as_str()) ")" }
                            form.inline method="post" action="/signout" {
                                input type="hidden" name="csrf" value=(viewer.csrf);
                                button.secondary type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A message box: `kind` is "ok", "error" or "" (information).
pub fn notice(kind: &str, text: Markup) -> Markup {
    html! { div class={ "notice " (kind) } role=(if kind == "error" { "alert" } else { "status" }) { (text) } }
}
