//! The exported functions called from Rust, through the rlib, as a C
//! program would: bad pointers and strings are errors (never crashes),
//! errors name the input, the last error is per thread, the caller's
//! images score like the core's tensor.

use dasnas_c::*;
use std::ffi::{c_char, CStr, CString};
use std::ptr;

const CELL: &str =
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|";

fn last_error() -> Option<String> {
    let p = dasnas_last_error();
    // SAFETY: the library's string, valid until the next failing call on
    // this thread; copied at once.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

/// A CPU scorer of 16 Gaussian images (seed 0).
fn cpu_scorer() -> *mut DasnasScorer {
    let mut o = dasnas_options_default();
    o.device = c"cpu".as_ptr();
    o.batch = 16;
    // SAFETY: valid options whose strings are literals.
    let s = unsafe { dasnas_scorer_open(&o) };
    assert!(!s.is_null(), "open: {:?}", last_error());
    s
}

fn score(s: *mut DasnasScorer, arch: &str) -> Result<DasnasScores, String> {
    let arch = CString::new(arch).unwrap();
    let mut out = DasnasScores::default();
    // SAFETY: a live scorer used by this thread only, a C string, a
    // writable out.
    match unsafe { dasnas_score(s, arch.as_ptr(), &mut out) } {
        0 => Ok(out),
        -1 => Err(last_error().expect("a failure sets the last error")),
        rc => panic!("dasnas_score returned {rc}"),
    }
}

#[test]
fn defaults_are_documented_ones() {
    let o = dasnas_options_default();
    assert!(o.space.is_null() && o.device.is_null() && o.data.is_null() && o.dataset.is_null());
    assert_eq!(
        (o.batch, o.seed, o.alpha, o.threads, o.lanes),
        (128, 0, 1.0, 0, 4)
    );
    // SAFETY: a static NUL-terminated string.
    let v = unsafe { CStr::from_ptr(dasnas_version()) };
    assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
}

#[test]
fn scores_match_the_core() {
    let s = cpu_scorer();
    let got = score(s, CELL).unwrap();
    let arch = dasnas_core::space::Arch::parse(dasnas_core::space::Space::NB201, CELL).unwrap();
    let batch = dasnas_core::data::gaussian_batch(16, 32, 0);
    let want = dasnas_core::score_arch(&arch, &batch, 0, 1.0)
        .unwrap()
        .scores;
    assert_eq!(
        got,
        DasnasScores {
            wot: want.wot.unwrap(),
            d: want.d.unwrap(),
            n_units: want.n_units,
            das: want.das.unwrap(),
            singular: false,
        }
    );
    // SAFETY: the scorer from cpu_scorer, freed once.
    unsafe { dasnas_scorer_free(s) };
}

#[test]
fn null_pointers_are_errors() {
    // SAFETY: NULL is allowed for every pointer (every call of this test).
    assert!(unsafe { dasnas_scorer_open(ptr::null()) }.is_null());
    assert_eq!(
        last_error().as_deref(),
        Some("invalid argument: options is NULL")
    );
    let o = dasnas_options_default();
    // SAFETY: valid options; NULL images.
    let s = unsafe { dasnas_scorer_open_images(&o, ptr::null(), 2, 3, 32, 32) };
    assert!(s.is_null());
    assert!(last_error().unwrap().contains("images is NULL"));
    let mut out = DasnasScores::default();
    let arch = CString::new(CELL).unwrap();
    // SAFETY: NULL scorer.
    assert_eq!(
        // SAFETY: as the comment above this statement says.
        unsafe { dasnas_score(ptr::null_mut(), arch.as_ptr(), &mut out) },
        -1
    );
    assert!(last_error().unwrap().contains("scorer is NULL"));
    let s = cpu_scorer();
    // SAFETY: a live scorer; NULL arch, then NULL out.
    assert_eq!(unsafe { dasnas_score(s, ptr::null(), &mut out) }, -1);
    assert!(last_error().unwrap().contains("arch is NULL"));
    // SAFETY: as above.
    assert_eq!(
        // SAFETY: as the comment above this statement says.
        unsafe { dasnas_score(s, arch.as_ptr(), ptr::null_mut()) },
        -1
    );
    assert!(last_error().unwrap().contains("out is NULL"));
    // SAFETY: freeing NULL does nothing; then the live scorer, once.
    unsafe {
        dasnas_scorer_free(ptr::null_mut());
        dasnas_scorer_free(s);
    }
}

#[test]
fn non_utf8_strings_are_errors() {
    let bad = b"nb\xff201\0";
    let mut o = dasnas_options_default();
    o.space = bad.as_ptr().cast::<c_char>();
    // SAFETY: valid options whose strings are NUL-terminated.
    assert!(unsafe { dasnas_scorer_open(&o) }.is_null());
    let e = last_error().unwrap();
    assert!(e.contains("options.space is not UTF-8"), "{e}");
    let s = cpu_scorer();
    let mut out = DasnasScores::default();
    // SAFETY: a live scorer, a NUL-terminated arch, a writable out.
    assert_eq!(
        // SAFETY: as the comment above this statement says.
        unsafe { dasnas_score(s, bad.as_ptr().cast(), &mut out) },
        -1
    );
    assert!(last_error().unwrap().contains("arch is not UTF-8"));
    // SAFETY: freed once.
    unsafe { dasnas_scorer_free(s) };
}

#[test]
fn unknown_names_are_named() {
    for (field, value, expected) in [
        ("space", c"nb999", "nb999"),
        ("device", c"tpu", "unknown device `tpu`"),
        ("dataset", c"imagenet", "unknown dataset `imagenet`"),
    ] {
        let mut o = dasnas_options_default();
        o.device = c"cpu".as_ptr();
        match field {
            "space" => o.space = value.as_ptr(),
            "device" => o.device = value.as_ptr(),
            _ => o.dataset = value.as_ptr(),
        }
        // SAFETY: valid options with literal strings.
        assert!(unsafe { dasnas_scorer_open(&o) }.is_null());
        let e = last_error().unwrap();
        assert!(e.contains(expected), "{field}: {e}");
    }
    let mut o = dasnas_options_default();
    o.device = c"cpu".as_ptr();
    o.alpha = f64::NAN;
    // SAFETY: valid options.
    assert!(unsafe { dasnas_scorer_open(&o) }.is_null());
    assert!(last_error().unwrap().contains("alpha NaN"));
    o.alpha = 1.0;
    o.batch = 1;
    // SAFETY: valid options.
    assert!(unsafe { dasnas_scorer_open(&o) }.is_null());
    assert!(last_error().unwrap().contains("batch 1 is too small"));
}

#[test]
fn invalid_arch_says_where() {
    let s = cpu_scorer();
    let e = score(s, "|bogus~0|").unwrap_err();
    assert!(
        e.starts_with("invalid architecture `|bogus~0|`") && e.contains("at byte"),
        "{e}"
    );
    // The scorer still works after an error.
    assert!(score(s, CELL).is_ok());
    // SAFETY: freed once.
    unsafe { dasnas_scorer_free(s) };
}

#[test]
fn singular_cell_is_minus_infinity() {
    let s = cpu_scorer();
    let r = score(s, "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|").unwrap();
    assert!(r.singular);
    assert_eq!(
        (r.wot, r.d, r.das),
        (f64::NEG_INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY)
    );
    assert!(r.n_units > 0);
    // SAFETY: freed once.
    unsafe { dasnas_scorer_free(s) };
}

#[test]
fn last_error_is_per_thread() {
    // SAFETY: NULL options are allowed.
    assert!(unsafe { dasnas_scorer_open(ptr::null()) }.is_null());
    assert!(last_error().is_some());
    std::thread::spawn(|| assert_eq!(last_error(), None))
        .join()
        .unwrap();
    // A success does not clear it.
    let s = cpu_scorer();
    assert!(score(s, CELL).is_ok());
    assert_eq!(
        last_error().as_deref(),
        Some("invalid argument: options is NULL")
    );
    // SAFETY: freed once.
    unsafe { dasnas_scorer_free(s) };
}

#[test]
fn caller_images_score_like_the_core() {
    let (n, c, h, w) = (8usize, 3usize, 32usize, 32usize);
    // Made-up values, NCHW: a smooth pattern per image and channel.
    let images: Vec<f32> = (0..n * c * h * w)
        .map(|i| ((i as f32 * 0.37).sin() + (i / (h * w)) as f32 * 0.1) * 1.5)
        .collect();
    let mut o = dasnas_options_default();
    o.device = c"cpu".as_ptr();
    o.batch = 0;
    o.seed = 3;
    // SAFETY: valid options; `images` holds n*c*h*w floats.
    let s = unsafe { dasnas_scorer_open_images(&o, images.as_ptr(), n, c, h, w) };
    assert!(!s.is_null(), "{:?}", last_error());
    let got = score(s, CELL).unwrap();
    // SAFETY: freed once.
    unsafe { dasnas_scorer_free(s) };

    use dasnas_core::data::array::{batch_from_nchw, Pixels};
    let batch = batch_from_nchw(Pixels::F32(&images), [n, c, h, w], 32).unwrap();
    let arch = dasnas_core::space::Arch::parse(dasnas_core::space::Space::NB201, CELL).unwrap();
    let want = dasnas_core::score_arch(&arch, &batch, 3, 1.0)
        .unwrap()
        .scores;
    assert_eq!(
        (got.wot, got.d, got.n_units),
        (want.wot.unwrap(), want.d.unwrap(), want.n_units)
    );

    // options.batch is ignored (the default 128 too); data must be NULL;
    // the shape is checked.
    o.batch = 128;
    // SAFETY: as above.
    let s = unsafe { dasnas_scorer_open_images(&o, images.as_ptr(), n, c, h, w) };
    assert!(!s.is_null(), "{:?}", last_error());
    // SAFETY: freed once.
    unsafe { dasnas_scorer_free(s) };
    o.data = c"gaussian".as_ptr();
    // SAFETY: as above.
    assert!(unsafe { dasnas_scorer_open_images(&o, images.as_ptr(), n, c, h, w) }.is_null());
    assert!(last_error().unwrap().contains("options.data"));
    o.data = ptr::null();
    // SAFETY: the shape asks for fewer values than the buffer holds.
    assert!(unsafe { dasnas_scorer_open_images(&o, images.as_ptr(), n, c, 16, 16) }.is_null());
    assert!(last_error()
        .unwrap()
        .contains("this space's network takes 32×32"));
    // SAFETY: a shape whose length overflows is refused before any read.
    assert!(
        // SAFETY: as the comment above this statement says.
        unsafe { dasnas_scorer_open_images(&o, images.as_ptr(), usize::MAX, 3, 32, 32) }.is_null()
    );
    assert!(last_error().unwrap().contains("too large"));
}

#[test]
fn measures_are_asked_for_by_name_and_read_in_order() {
    let mut o = dasnas_options_default();
    o.device = c"cpu".as_ptr();
    o.batch = 8;
    o.measures = c"zico,wot,grad_norm".as_ptr();
    // SAFETY: valid options whose strings are literals.
    let s = unsafe { dasnas_scorer_open(&o) };
    assert!(!s.is_null(), "open: {:?}", last_error());
    // SAFETY: a live scorer.
    let n = unsafe { dasnas_measure_count(s) };
    assert_eq!(
        n, 2,
        "wot is a field of DasnasScores, not a measure to read"
    );
    let names: Vec<String> = (0..n)
        .map(|i| {
            // SAFETY: a live scorer, i in range; the names are static strings.
            unsafe { CStr::from_ptr(dasnas_measure_name(s, i)) }
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(names, ["grad_norm", "zico"]);
    // SAFETY: a live scorer; index out of range is an error, not a crash.
    assert!(unsafe { dasnas_measure_name(s, 2) }.is_null());
    assert!(last_error().unwrap().contains("out of range"));
    let arch = CString::new(CELL).unwrap();
    let mut out = DasnasScores::default();
    let mut values = [0f64; 2];
    // SAFETY: a live scorer, a C string, writable outputs of n values.
    let rc = unsafe { dasnas_score_measures(s, arch.as_ptr(), &mut out, values.as_mut_ptr(), 2) };
    assert_eq!(rc, 0, "{:?}", last_error());
    assert!(
        values.iter().all(|v| v.is_finite() && *v > 0.0),
        "{values:?}"
    );
    assert_eq!(out, score(s, CELL).unwrap());
    // SAFETY: as above, with the wrong count.
    let rc = unsafe { dasnas_score_measures(s, arch.as_ptr(), &mut out, values.as_mut_ptr(), 1) };
    assert_eq!(rc, -1);
    assert!(last_error().unwrap().contains("dasnas_measure_count"));
    // SAFETY: freed once.
    unsafe { dasnas_scorer_free(s) };

    o.measures = c"zico,synflo".as_ptr();
    // SAFETY: valid options.
    assert!(unsafe { dasnas_scorer_open(&o) }.is_null());
    let e = last_error().unwrap();
    assert!(
        e.contains("options.measures") && e.contains("synflo"),
        "{e}"
    );
}
