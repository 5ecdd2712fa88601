//! `dasnas devices`: the CUDA GPUs, and whether NVRTC (the run-time
//! kernel compiler) loads and compiles.

use dasnas::error::Result;

/// Runs `dasnas devices`.
pub fn run() -> Result<()> {
    use dasnas::runtime::cuda;
    // The driver: its CUDA version and the GPUs it sees.
    let driver = if cuda::driver_available() {
        match cuda::driver_version() {
            Ok(v) => {
                println!("driver: CUDA {}.{} (cuDriverGetVersion)", v.0, v.1);
                Some(v)
            }
            Err(e) => {
                println!("driver: {e}");
                None
            }
        }
    } else {
        println!("no CUDA driver found (libcuda.so cannot be loaded)");
        None
    };
    let mut gpus = Vec::new();
    if driver.is_some() {
        gpus = cuda::list_devices()?;
        if gpus.is_empty() {
            println!("CUDA driver found, but it sees no GPU");
        }
    }
    for g in &gpus {
        println!(
            "GPU {}: {}, compute capability {}.{} (sm_{}), {:.1} GiB, {} SMs, fp32 peak {:.1} TFLOP/s",
            g.ordinal,
            g.name,
            g.compute_capability.0,
            g.compute_capability.1,
            g.arch(),
            g.total_memory as f64 / (1u64 << 30) as f64,
            g.multiprocessors,
            g.fp32_peak_flops() / 1e12
        );
    }
    // NVRTC: which library, which version, and whether its kernels load.
    match cuda::nvrtc::library() {
        Ok(lib) => {
            let (major, minor) = lib.version();
            println!(
                "NVRTC {major}.{minor}: {} (chosen by {}; set {} to choose another)",
                lib.path().display(),
                lib.chosen_by(),
                cuda::nvrtc::NVRTC_ENV
            );
            match driver {
                Some(d) => match cuda::nvrtc_compatibility(d, (major, minor)) {
                    Ok(why) => println!("compatible: {why}"),
                    Err(why) => println!("compatible: no: {why}"),
                },
                None => println!("compatible: unknown (no driver)"),
            }
            // One real compile, so a broken NVRTC (missing builtins, say)
            // shows here rather than at the first score.
            let arch = gpus.first().map_or(90, |g| g.arch());
            let src = cuda::nvrtc::source("relu")?;
            match cuda::nvrtc::compile("relu", src, arch) {
                Ok(c) => println!("NVRTC compile check (relu.cu): ok, {}", c.image.describe()),
                Err(e) => println!("NVRTC compile check (relu.cu): FAILED: {}", plain(&e)),
            }
            for g in &gpus {
                if lib.supported_archs().contains(&g.arch()) {
                    println!(
                        "GPU {}: kernels load as CUBIN for sm_{}",
                        g.ordinal,
                        g.arch()
                    );
                } else {
                    println!(
                        "GPU {}: NVRTC {major}.{minor} cannot emit a CUBIN for sm_{}: kernels load \
                         as PTX, compiled by the driver",
                        g.ordinal,
                        g.arch()
                    );
                }
            }
        }
        Err(e) => println!(
            "NVRTC: not found (kernels cannot be compiled): {}",
            plain(&e)
        ),
    }
    Ok(())
}

/// An error's message without the `device: ` prefix of its kind.
fn plain(e: &dasnas::Error) -> String {
    match e {
        dasnas::Error::Device(m) => m.clone(),
        other => other.to_string(),
    }
}
