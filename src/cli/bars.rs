//! Progress bars for the library pipelines' [`Progress`] reports, and their notices on stderr.

use indicatif::{ProgressBar, ProgressStyle};
use std::sync::Mutex;
use xpcs_twin::pipeline::Progress;

/// One bar at a time: "<stage> [bar] pos/len <unit>, eta".
#[derive(Default)]
pub(crate) struct Bars {
    bar: Mutex<Option<ProgressBar>>,
}

impl Progress for Bars {
    fn start(&self, stage: &str, len: u64, unit: &str) {
        let b = ProgressBar::new(len);
        b.set_style(
            ProgressStyle::with_template(&format!(
                "{stage} {{bar:40}} {{pos}}/{{len}} {unit}, eta {{eta}}"
            ))
            .expect("valid template"),
        );
        *self.bar.lock().expect("lock") = Some(b);
    }
    fn inc(&self, n: u64) {
        if let Some(b) = self.bar.lock().expect("lock").as_ref() {
            b.inc(n);
        }
    }
    fn finish(&self) {
        if let Some(b) = self.bar.lock().expect("lock").take() {
            b.finish_and_clear();
        }
    }
    fn note(&self, message: &str) {
        match self.bar.lock().expect("lock").as_ref() {
            Some(b) => b.suspend(|| eprintln!("{message}")),
            None => eprintln!("{message}"),
        }
    }
}
