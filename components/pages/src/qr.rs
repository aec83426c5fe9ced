//! QR codes for the projector, drawn as SVG by the app itself (no QR service).

use qrcode::{Color, EcLevel, QrCode};

/// Modules of light margin around the code; the standard asks for four.
const QUIET_ZONE: usize = 4;

/// An SVG of `data` as a QR code: one `<path>` of dark modules on a white square.
///
/// The markup holds only numbers and fixed strings (never `data`), so it can be placed in
/// a page unescaped; the page prints the URL itself, escaped, under the code. Level M
/// survives a smudged projector screen and keeps a short URL at a low version (big modules).
pub fn svg(data: &str) -> Result<String, qrcode::types::QrError> {
    let code = QrCode::with_error_correction_level(data.as_bytes(), EcLevel::M)?;
    let width = code.width();
    let colors = code.to_colors();
    let size = width + 2 * QUIET_ZONE;
    let mut path = String::new();
    for (y, row) in colors.chunks(width).enumerate() {
        // Horizontal runs of dark modules: one rectangle each keeps the path short.
        let mut x = 0;
        while x < width {
            if row[x] == Color::Dark {
                let start = x;
                while x < width && row[x] == Color::Dark {
                    x += 1;
                }
                let run = x - start;
                path.push_str(&format!(
                    "M{} {}h{run}v1h-{run}z",
                    start + QUIET_ZONE,
                    y + QUIET_ZONE
                ));
            } else {
                x += 1;
            }
        }
    }
    Ok(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {size} {size}\" \
         shape-rendering=\"crispEdges\" class=\"qr-svg\" aria-hidden=\"true\" focusable=\"false\">\
         <rect width=\"{size}\" height=\"{size}\" fill=\"#fff\"/>\
         <path fill=\"#000\" d=\"{path}\"/></svg>"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Redraws the SVG's path into a module grid.
    fn modules(svg: &str) -> (usize, Vec<Vec<bool>>) {
        let size: usize = svg
            .split("viewBox=\"0 0 ")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .unwrap()
            .parse()
            .unwrap();
        let d = svg
            .split(" d=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let mut grid = vec![vec![false; size]; size];
        for rect in d.split('z').filter(|r| !r.is_empty()) {
            let rect = rect.strip_prefix('M').unwrap();
            let (x, rest) = rect.split_once(' ').unwrap();
            let (y, rest) = rest.split_once('h').unwrap();
            let run: usize = rest.split_once('v').unwrap().0.parse().unwrap();
            let (x, y): (usize, usize) = (x.parse().unwrap(), y.parse().unwrap());
            for cell in &mut grid[y][x..x + run] {
                assert!(!*cell, "overlapping runs");
                *cell = true;
            }
        }
        (size, grid)
    }

    #[test]
    fn svg_draws_exactly_the_encoders_modules() {
        let data = "https://honey.example.org/?referral=conf-partner-2026";
        let code = QrCode::with_error_correction_level(data, EcLevel::M).unwrap();
        let (size, grid) = modules(&svg(data).unwrap());
        let width = code.width();
        assert_eq!(size, width + 2 * QUIET_ZONE);
        for y in 0..size {
            for x in 0..size {
                let inside = (QUIET_ZONE..QUIET_ZONE + width).contains(&x)
                    && (QUIET_ZONE..QUIET_ZONE + width).contains(&y);
                let dark = inside && code[(x - QUIET_ZONE, y - QUIET_ZONE)] == Color::Dark;
                assert_eq!(grid[y][x], dark, "module {x},{y}");
            }
        }
    }

    #[test]
    fn finder_pattern_is_where_scanners_look() {
        let (_, grid) = modules(&svg("http://127.0.0.1:3000/").unwrap());
        let q = QUIET_ZONE;
        // Top-left finder: a dark 7x7 ring, a light ring, a dark 3x3 centre.
        for i in 0..7 {
            assert!(grid[q][q + i] && grid[q + 6][q + i] && grid[q + i][q] && grid[q + i][q + 6]);
        }
        for i in 1..6 {
            assert!(!grid[q + 1][q + i] && !grid[q + 5][q + i]);
        }
        assert!(grid[q + 3][q + 3]);
    }

    #[test]
    fn the_markup_never_contains_the_data() {
        let svg = svg("https://x.example/?referral=<script>alert(1)</script>").unwrap();
        assert!(!svg.contains("script"));
        assert!(!svg.contains("x.example"));
    }
}
