//! The pages, rendered server-side with askama (which HTML-escapes every `{{ }}`).
//!
//! Templates live in `components/pages/templates/`. They carry no inline script or style
//! (the CSP forbids both); all behaviour is in `static/*.js`, which reads what it needs
//! from `data-` attributes rendered here.

use askama::Template;
use poll_core::Choice;

use crate::qr;
use crate::site::{Query, Site};

/// A poll option with the subway line it borrows its bullet from. The bullets are
/// decoration (hidden from screen readers); colours are in `app.css` per line.
pub struct PollOption {
    pub id: &'static str,
    pub label: &'static str,
    pub line: &'static str,
}

fn options() -> Vec<PollOption> {
    Choice::ALL
        .iter()
        .map(|c| PollOption {
            id: c.id(),
            label: c.label(),
            line: match c {
                Choice::Print => "1",
                Choice::Stare => "4",
                Choice::Ai => "7",
                Choice::Revert => "A",
                Choice::Restart => "N",
            },
        })
        .collect()
}

/// The poll's question, shown by every page.
pub const QUESTION: &str = "What's your go-to debugging strategy?";

/// What every page shows in its masthead.
pub struct Brand {
    pub name: String,
    pub city: String,
    pub logo: Option<String>,
}

impl Brand {
    fn new(site: &Site, query: &Query) -> Brand {
        Brand {
            name: query.conf.clone().unwrap_or_else(|| site.name.clone()),
            city: site.city.clone(),
            logo: site.logo.clone(),
        }
    }
}

#[derive(Template)]
#[template(path = "vote.html")]
pub struct VotePage {
    brand: Brand,
    /// `?conf=…` for links to the other pages (empty when not branded by the URL).
    conf: String,
    referral: String,
    options: Vec<PollOption>,
}

#[derive(Template)]
#[template(path = "results.html")]
pub struct ResultsPage {
    brand: Brand,
    vote_host: String,
    options: Vec<PollOption>,
}

pub struct QrCode {
    pub title: &'static str,
    pub note: &'static str,
    pub url: String,
    /// Geometry only (see `qr::svg`), so it is inserted unescaped.
    pub svg: String,
}

#[derive(Template)]
#[template(path = "qr.html")]
pub struct QrPage {
    brand: Brand,
    conf: String,
    codes: Vec<QrCode>,
}

#[derive(Template)]
#[template(path = "admin.html")]
pub struct AdminPage {
    brand: Brand,
    conf: String,
    options: Vec<PollOption>,
}

pub fn vote(site: &Site, query: &Query) -> VotePage {
    VotePage {
        brand: Brand::new(site, query),
        conf: query.conf_suffix(true),
        referral: query.referral.clone().unwrap_or_default(),
        options: options(),
    }
}

pub fn results(site: &Site, query: &Query) -> ResultsPage {
    ResultsPage {
        brand: Brand::new(site, query),
        vote_host: site.public_host().to_owned(),
        options: options(),
    }
}

/// The two codes of the talk: the plain vote link (left) and the referral link (right).
/// A `?conf=` branding of the QR page rides along in both, so phones see the same name.
pub fn qr(site: &Site, query: &Query) -> Result<QrPage, qrcode::types::QrError> {
    let left = format!("{}/{}", site.public_url, query.conf_suffix(true));
    let right = format!(
        "{}/?referral={}{}",
        site.public_url,
        poll_core::percent_encode(&site.referral_code),
        query.conf_suffix(false)
    );
    let codes = vec![
        QrCode {
            title: "Scan to vote",
            note: "No strings attached",
            svg: qr::svg(&left)?,
            url: left,
        },
        QrCode {
            title: "Partner link",
            note: "Vote with a partner code",
            svg: qr::svg(&right)?,
            url: right,
        },
    ];
    Ok(QrPage {
        brand: Brand::new(site, query),
        conf: query.conf_suffix(true),
        codes,
    })
}

pub fn admin(site: &Site, query: &Query) -> AdminPage {
    AdminPage {
        brand: Brand::new(site, query),
        conf: query.conf_suffix(true),
        options: options(),
    }
}
