#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vedfolnir_autoscaler::fuzz::scrape_text(data));
