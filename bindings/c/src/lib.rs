//! The C ABI of `dasnas`: open a scorer once, score many cells with it.
//!
//! Built as `libdasnas_c.so` and `libdasnas_c.a`; the header `include/dasnas.h`
//! at the repository root is generated from this file by cbindgen (and
//! checked against it by `tests/header.rs`). See `bindings/c/README.md`.
//!
//! Rules every exported function keeps:
//! - a NULL pointer or a string that is not UTF-8 is an error, never
//!   undefined behaviour or a crash;
//! - no panic crosses the boundary: the body runs under
//!   `dasnas::error::catch_panic`, and a panic is reported as an error
//!   (`dasnas internal error (a bug; please report it): …`);
//! - a failure returns -1 or NULL and sets this thread's last error
//!   (`dasnas_last_error()`) to the library's message, which names the bad
//!   input. A call that succeeds leaves the last error as it was (like
//!   `errno`): check the return value first.
//!
//! A scorer may be used by one thread at a time (it may move between
//! threads); different scorers may be used on different threads at once.
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr, CString};
use std::panic::catch_unwind;
use std::ptr;

use dasnas_core::data::array::{batch_from_nchw, Pixels};
use dasnas_core::run::{Images, Run, RunOptions};
use dasnas_core::space::Space;
use dasnas_core::{Error, Result};

/// An open scorer: a device, a scoring batch, the search space, the seed
/// of the cells' weights and DAS's alpha. Opaque to C; made by
/// `dasnas_scorer_open()` or `dasnas_scorer_open_images()`, freed by
/// `dasnas_scorer_free()`.
pub struct DasnasScorer {
    run: Run,
    /// Set while a cell is scored: still set when scoring panicked, after
    /// which the scorer's state is not trusted.
    busy: bool,
}

// A scorer may move to another thread between calls (one thread at a time).
const _: () = {
    const fn is_send<T: Send>() {}
    is_send::<DasnasScorer>();
};

/// How to open a scorer. Start from `dasnas_options_default()` and change
/// the fields you need; the strings are only read during the call.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct DasnasOptions {
    /// Search space: "nb201", "nb101" or "darts"; NULL: "nb201".
    pub space: *const c_char,
    /// Device: "auto" (the first GPU, else the CPU, with a notice on
    /// stderr), "cpu", "cuda" or "cuda:N"; NULL: "auto".
    pub device: *const c_char,
    /// The scoring batch: NULL or "gaussian" for seeded N(0, 1) images,
    /// else the path of a CIFAR binary file (its first `batch` images).
    /// Must be NULL for `dasnas_scorer_open_images()`.
    pub data: *const c_char,
    /// The CIFAR file's dataset, "cifar10" or "cifar100"; NULL: "cifar10".
    pub dataset: *const c_char,
    /// Images in the scoring batch (at least 2); 0: 128. Ignored by
    /// `dasnas_scorer_open_images()`, whose batch is the caller's images.
    pub batch: usize,
    /// Seed of the cells' weights (and of the Gaussian images).
    pub seed: u64,
    /// DAS's alpha (DAS = D + alpha * B * ln N_A); 1 for the plain
    /// decomposition of WOT. Must be finite.
    pub alpha: f64,
    /// CPU worker threads of this scorer; 0: all cores.
    pub threads: usize,
    /// Cells in flight at once on a GPU; 0: 4.
    pub lanes: usize,
    /// Training-free measures to compute beside the scores, by name,
    /// comma-separated ("grad_norm,zico"), or "all" (docs/measures.md);
    /// NULL: none. Read them with `dasnas_score_measures()`.
    pub measures: *const c_char,
}

/// The scores of one cell.
///
/// A singular cell (two images with equal activation codes, so K_H is
/// singular) has `wot`, `d` and `das` equal to `-INFINITY` (ln 0) and
/// `singular` true.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DasnasScores {
    /// NASWOT: ln det K_H.
    pub wot: f64,
    /// Distinguishing ability D = ln det(K_H / N_A).
    pub d: f64,
    /// N_A: ReLU units counted per image.
    pub n_units: u64,
    /// DAS = D + alpha * B * ln N_A.
    pub das: f64,
    /// K_H is singular: `wot`, `d` and `das` are -INFINITY.
    pub singular: bool,
}

const DEFAULT_OPTIONS: DasnasOptions = DasnasOptions {
    space: ptr::null(),
    device: ptr::null(),
    data: ptr::null(),
    dataset: ptr::null(),
    batch: 128,
    seed: 0,
    alpha: 1.0,
    threads: 0,
    lanes: 4,
    measures: ptr::null(),
};

const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

thread_local! {
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

fn set_last_error(msg: String) {
    let msg = CString::new(msg.replace('\0', "\\0")).unwrap_or_default();
    // During the thread's exit the slot may be gone: nothing to report to.
    let _ = LAST_ERROR.try_with(|e| *e.borrow_mut() = Some(msg));
}

/// Runs an exported function's body: its value, or `on_error` with the
/// error (or the panic, `catch_panic`) stored as this thread's last error.
fn ffi<T>(on_error: T, body: impl FnOnce() -> Result<T>) -> T {
    match dasnas_core::error::catch_panic(body) {
        Ok(v) => v,
        Err(e) => {
            set_last_error(e.to_string());
            on_error
        }
    }
}

fn null(what: &str) -> Error {
    Error::Arg(format!("{what} is NULL"))
}

/// The string at `p`, `None` when `p` is NULL; an error naming `what` when
/// it is not UTF-8.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that stays valid and
/// unchanged while the returned reference is used.
unsafe fn opt_str<'a>(p: *const c_char, what: &str) -> Result<Option<&'a str>> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: `p` is not NULL, and the caller promises a NUL-terminated
    // string that outlives 'a.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str().map(Some).map_err(|e| {
        Error::Arg(format!(
            "{what} is not UTF-8 (invalid byte at {})",
            e.valid_up_to()
        ))
    })
}

/// [`opt_str`], with NULL an error.
///
/// # Safety
/// As for [`opt_str`].
unsafe fn req_str<'a>(p: *const c_char, what: &str) -> Result<&'a str> {
    // SAFETY: the caller's promise, passed on.
    unsafe { opt_str(p, what) }?.ok_or_else(|| null(what))
}

/// The library's run options of `opts`, checked.
///
/// # Safety
/// `opts` is NULL or points to a valid `DasnasOptions` whose strings are
/// NULL or NUL-terminated and valid during the call.
unsafe fn run_options(opts: *const DasnasOptions) -> Result<RunOptions> {
    // SAFETY: NULL is checked by `as_ref`; otherwise the caller promises a
    // valid, aligned DasnasOptions.
    let o = unsafe { opts.as_ref() }.ok_or_else(|| null("options"))?;
    // SAFETY: the caller promises NULL or valid strings (for the four
    // strings below).
    let space: Space = unsafe { opt_str(o.space, "options.space") }?
        .unwrap_or("nb201")
        .parse()?;
    let mut r = RunOptions::new(space);
    // SAFETY: as above.
    r.device = unsafe { opt_str(o.device, "options.device") }?
        .unwrap_or("auto")
        .parse()?;
    // SAFETY: as above.
    r.images = Images::parse(unsafe { opt_str(o.data, "options.data") }?.unwrap_or("gaussian"));
    // SAFETY: as above.
    r.dataset = unsafe { opt_str(o.dataset, "options.dataset") }?
        .unwrap_or("cifar10")
        .parse()?;
    r.batch = Some(if o.batch == 0 {
        dasnas_core::run::DEFAULT_BATCH
    } else {
        o.batch
    });
    r.seed = o.seed;
    r.alpha = o.alpha;
    r.threads = (o.threads != 0).then_some(o.threads);
    r.lanes = if o.lanes == 0 {
        dasnas_core::run::DEFAULT_LANES
    } else {
        o.lanes
    };
    // SAFETY: as above.
    if let Some(list) = unsafe { opt_str(o.measures, "options.measures") }? {
        r.measures = dasnas_core::measures::MeasureSet::parse(list)
            .map_err(|e| e.context("options.measures"))?;
    }
    r.check()?;
    Ok(r)
}

/// Opens the run of `options`.
fn open(options: &RunOptions) -> Result<*mut DasnasScorer> {
    let run = options.open()?;
    for n in run.notices() {
        eprintln!("dasnas: {n}");
    }
    Ok(Box::into_raw(Box::new(DasnasScorer { run, busy: false })))
}

/// The default options: space "nb201", device "auto", Gaussian images
/// (`data` NULL), dataset "cifar10", batch 128, seed 0, alpha 1, all cores
/// (`threads` 0), 4 lanes.
#[no_mangle]
pub extern "C" fn dasnas_options_default() -> DasnasOptions {
    ffi(DEFAULT_OPTIONS, || Ok(DEFAULT_OPTIONS))
}

/// Opens a scorer as `opts` says: the device, and a scoring batch of
/// `opts->batch` Gaussian images (`opts->data` NULL or "gaussian", drawn
/// with `opts->seed`) or the first images of a CIFAR binary file
/// (`opts->data` its path, `opts->dataset` its kind).
///
/// Returns NULL on error (unknown space, device or dataset, an unreadable
/// file, a batch that does not fit in memory, no usable GPU for "cuda",
/// ...), and then `dasnas_last_error()` says why. With device "auto" and
/// no usable GPU it runs on the CPU and says so on stderr. Free the scorer
/// with `dasnas_scorer_free()`.
///
/// # Safety
/// `opts` is NULL or points to a valid `DasnasOptions` whose strings are
/// NULL or NUL-terminated; they are read only during the call.
#[no_mangle]
pub unsafe extern "C" fn dasnas_scorer_open(opts: *const DasnasOptions) -> *mut DasnasScorer {
    ffi(ptr::null_mut(), || {
        // SAFETY: the caller's promise about `opts`, passed on.
        let options = unsafe { run_options(opts) }?;
        open(&options)
    })
}

/// Opens a scorer whose scoring batch is the caller's `n` images, an NCHW
/// array of float32 (`n` × `c` × `h` × `w` values, row-major), already
/// normalised; they are copied, so the buffer may be freed after the call.
/// The images must be RGB (`c` = 3) and of the space's input size (32×32
/// for all three spaces), with at least 2 images and only finite values.
///
/// `opts->data` must be NULL; `opts->batch` is ignored (the batch is the
/// `n` images, so the defaults of `dasnas_options_default()` do). The
/// other options are used as in `dasnas_scorer_open()`.
/// Returns NULL on error, and then `dasnas_last_error()` says why.
///
/// # Safety
/// As for `dasnas_scorer_open()`; and `images` is NULL or points to
/// `n * c * h * w` readable floats.
#[no_mangle]
pub unsafe extern "C" fn dasnas_scorer_open_images(
    opts: *const DasnasOptions,
    images: *const f32,
    n: usize,
    c: usize,
    h: usize,
    w: usize,
) -> *mut DasnasScorer {
    ffi(ptr::null_mut(), || {
        // SAFETY: the caller's promise about `opts`, passed on.
        let mut options = unsafe { run_options(opts) }?;
        // SAFETY: `run_options` has checked that `opts` is not NULL; the
        // caller promises its strings are NULL or NUL-terminated.
        let data = unsafe { opt_str((*opts).data, "options.data") }?;
        if let Some(d) = data {
            return Err(Error::Arg(format!(
                "options.data is `{d}`: it must be NULL when the images are given"
            )));
        }
        if images.is_null() {
            return Err(null("images"));
        }
        let shape = [n, c, h, w];
        let len = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .filter(|&l| l <= isize::MAX as usize / std::mem::size_of::<f32>())
            .ok_or_else(|| Error::Arg(format!("images: shape {shape:?} is too large")))?;
        // SAFETY: `images` is not NULL, the caller promises `len` readable
        // floats there, and `len` floats fit in isize bytes (checked above).
        let pixels = unsafe { std::slice::from_raw_parts(images, len) };
        let size = options.space.image_size(&options.space_options)?;
        options.images = Images::Given(batch_from_nchw(Pixels::F32(pixels), shape, size)?);
        options.batch = None;
        open(&options)
    })
}

/// Scores the cell `arch`, written in the scorer's space's syntax (NB201:
/// `|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|`),
/// into `*out`.
///
/// Returns 0 on success; -1 on error (a NULL pointer, an invalid
/// architecture, a device failure), and then `dasnas_last_error()` says
/// why and `*out` is unchanged. A singular cell is a success: see
/// `DasnasScores`.
///
/// # Safety
/// `scorer` is NULL or a scorer from `dasnas_scorer_open()` (or
/// `dasnas_scorer_open_images()`) not yet freed and not in use by another
/// thread; `arch` is NULL or a NUL-terminated string; `out` is NULL or
/// points to writable `DasnasScores`.
#[no_mangle]
pub unsafe extern "C" fn dasnas_score(
    scorer: *mut DasnasScorer,
    arch: *const c_char,
    out: *mut DasnasScores,
) -> c_int {
    ffi(-1, || {
        if out.is_null() {
            return Err(null("out"));
        }
        let mut scores = DasnasScores::default();
        // SAFETY: the caller's promises, passed on.
        unsafe { score_into(scorer, arch, &mut scores) }?;
        // SAFETY: `out` is not NULL and the caller promises it is writable.
        unsafe { out.write(scores) };
        Ok(0)
    })
}

/// Scores `arch` with `scorer` into `scores` and returns its measures.
///
/// # Safety
/// `scorer` is NULL or a live scorer that no other thread is using; `arch`
/// is NULL or a NUL-terminated string.
unsafe fn score_into(
    scorer: *mut DasnasScorer,
    arch: *const c_char,
    scores: &mut DasnasScores,
) -> Result<Vec<(&'static str, Option<f64>)>> {
    // SAFETY: NULL is checked by `as_mut`; otherwise the caller promises
    // a live scorer that no other thread is using.
    let s = unsafe { scorer.as_mut() }.ok_or_else(|| null("scorer"))?;
    // SAFETY: the caller promises NULL or a NUL-terminated string.
    let arch = unsafe { req_str(arch, "arch") }?;
    if s.busy {
        return Err(Error::Arg(
            "this scorer failed with an internal error earlier and cannot be used; free it \
             and open another"
                .into(),
        ));
    }
    let arch = s.run.arch(arch)?;
    s.busy = true;
    let results = s.run.score_repeats(&[&arch]);
    s.busy = false;
    let r = results?
        .pop()
        .and_then(|mut repeats| repeats.pop())
        .ok_or_else(|| Error::Internal(format!("cell {arch}: no result")))?;
    let sc = &r.scores;
    let ln = |v: Option<f64>| v.unwrap_or(f64::NEG_INFINITY);
    *scores = DasnasScores {
        wot: ln(sc.wot),
        d: ln(sc.d),
        n_units: sc.n_units,
        das: ln(sc.das),
        singular: sc.singular,
    };
    Ok(r.measures)
}

/// The number of measures the scorer computes beyond the scores (those of
/// `options.measures` that are not fields of `DasnasScores`'s pass); 0 for
/// NULL.
///
/// # Safety
/// `scorer` is NULL or a live scorer from `dasnas_scorer_open()`.
#[no_mangle]
pub unsafe extern "C" fn dasnas_measure_count(scorer: *const DasnasScorer) -> usize {
    ffi(0, || {
        // SAFETY: NULL is checked by `as_ref`; otherwise a live scorer.
        let s = unsafe { scorer.as_ref() }.ok_or_else(|| null("scorer"))?;
        Ok(s.run.scorer_ref().measures().computed().count())
    })
}

/// The name of measure `i` (0-based, in the order `dasnas_score_measures()`
/// writes them): a static NUL-terminated string, or NULL (and the last
/// error set) for a NULL scorer or `i` out of range.
///
/// # Safety
/// `scorer` is NULL or a live scorer from `dasnas_scorer_open()`.
#[no_mangle]
pub unsafe extern "C" fn dasnas_measure_name(
    scorer: *const DasnasScorer,
    i: usize,
) -> *const c_char {
    ffi(ptr::null(), || {
        // SAFETY: NULL is checked by `as_ref`; otherwise a live scorer.
        let s = unsafe { scorer.as_ref() }.ok_or_else(|| null("scorer"))?;
        let names: Vec<&str> = s
            .run
            .scorer_ref()
            .measures()
            .computed()
            .map(|m| m.name)
            .collect();
        let name = names.get(i).ok_or_else(|| {
            Error::Arg(format!(
                "measure index {i} is out of range: the scorer computes {} measures",
                names.len()
            ))
        })?;
        MEASURE_NAMES
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c.as_ptr())
            .ok_or_else(|| Error::Internal(format!("no C name for measure {name}")))
    })
}

/// Every measure's name as a C string.
static MEASURE_NAMES: std::sync::LazyLock<Vec<(&'static str, CString)>> =
    std::sync::LazyLock::new(|| {
        dasnas_core::measures::ALL
            .iter()
            .map(|m| (m.name, CString::new(m.name).unwrap_or_default()))
            .collect()
    });

/// Scores `arch` like `dasnas_score()` into `*out`, and writes its measures
/// into `values[0..n]` in the order of `dasnas_measure_name()`; a measure
/// that is not a number for this cell is NaN. `n` must equal
/// `dasnas_measure_count(scorer)`.
///
/// Returns 0 on success, -1 on error (then `dasnas_last_error()` says why
/// and nothing is written).
///
/// # Safety
/// As `dasnas_score()`; `values` is NULL (only with `n` 0) or points to
/// `n` writable doubles.
#[no_mangle]
pub unsafe extern "C" fn dasnas_score_measures(
    scorer: *mut DasnasScorer,
    arch: *const c_char,
    out: *mut DasnasScores,
    values: *mut f64,
    n: usize,
) -> c_int {
    ffi(-1, || {
        // SAFETY: NULL is checked by `as_ref`; otherwise a live scorer.
        let count = unsafe { scorer.as_ref() }
            .ok_or_else(|| null("scorer"))?
            .run
            .scorer_ref()
            .measures()
            .computed()
            .count();
        if n != count {
            return Err(Error::Arg(format!(
                "n is {n}, but the scorer computes {count} measures (dasnas_measure_count)"
            )));
        }
        if values.is_null() && n > 0 {
            return Err(null("values"));
        }
        let mut scores = DasnasScores::default();
        // SAFETY: the caller's promises for `dasnas_score`, and `scores`
        // is a local.
        let measures = unsafe { score_into(scorer, arch, &mut scores) }?;
        if out.is_null() {
            return Err(null("out"));
        }
        // SAFETY: `out` is not NULL and the caller promises it is writable.
        unsafe { out.write(scores) };
        for (i, (_, v)) in measures.iter().enumerate().take(n) {
            // SAFETY: `values` points to `n` writable doubles and i < n.
            unsafe { values.add(i).write(v.unwrap_or(f64::NAN)) };
        }
        Ok(0)
    })
}

/// Frees a scorer (its device memory and threads). NULL is allowed and
/// does nothing.
///
/// # Safety
/// `scorer` is NULL or a scorer from `dasnas_scorer_open()` (or
/// `dasnas_scorer_open_images()`) not yet freed and not in use; it must
/// not be used afterwards.
#[no_mangle]
pub unsafe extern "C" fn dasnas_scorer_free(scorer: *mut DasnasScorer) {
    ffi((), || {
        if !scorer.is_null() {
            // SAFETY: the caller promises a scorer made by Box::into_raw in
            // `open`, freed only here, once.
            drop(unsafe { Box::from_raw(scorer) });
        }
        Ok(())
    })
}

/// The message of this thread's last failed dasnas call, NULL if none has
/// failed on this thread. The string belongs to the library: it stays
/// valid until the next failing dasnas call on this thread (do not free
/// it). Calls that succeed do not clear it.
#[no_mangle]
pub extern "C" fn dasnas_last_error() -> *const c_char {
    catch_unwind(|| {
        LAST_ERROR
            .try_with(|e| e.borrow().as_ref().map_or(ptr::null(), |m| m.as_ptr()))
            .unwrap_or(ptr::null())
    })
    .unwrap_or(ptr::null())
}

/// The library's version, e.g. "0.1.0" (a static string).
#[no_mangle]
pub extern "C" fn dasnas_version() -> *const c_char {
    ffi(ptr::null(), || Ok(VERSION.as_ptr().cast()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last_error() -> String {
        let p = dasnas_last_error();
        assert!(!p.is_null());
        // SAFETY: the library's string, copied at once.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }

    #[test]
    fn a_panic_is_an_error_not_an_unwind() {
        let v = ffi(-1, || -> Result<c_int> { panic!("boom {}", 7) });
        assert_eq!(v, -1);
        assert_eq!(
            last_error(),
            "dasnas internal error (a bug; please report it): boom 7"
        );
    }

    #[test]
    fn a_scorer_that_panicked_is_refused() {
        let mut o = dasnas_options_default();
        o.device = c"cpu".as_ptr();
        o.batch = 4;
        // SAFETY: valid options with literal strings.
        let s = unsafe { dasnas_scorer_open(&o) };
        assert!(!s.is_null());
        // SAFETY: the live scorer, used by this thread only.
        unsafe { (*s).busy = true };
        let mut out = DasnasScores::default();
        // SAFETY: a live scorer, a literal arch, a writable out.
        let rc = unsafe {
            dasnas_score(
                s,
                c"|none~0|+|none~0|none~1|+|none~0|none~1|none~2|".as_ptr(),
                &mut out,
            )
        };
        assert_eq!(rc, -1);
        assert!(last_error().contains("free it and open another"));
        // SAFETY: freed once.
        unsafe { dasnas_scorer_free(s) };
    }
}
