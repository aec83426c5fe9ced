//! Compiling components once: the machine code for each component is cached on disk, keyed by a
//! hash of the component's bytes and of the engine's settings, so a restart does not recompile.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::Context;
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

static CACHE_DIR: OnceLock<Option<PathBuf>> = OnceLock::new();

/// Sets where compiled components are kept (`None` disables the cache). Call once at start-up.
pub fn set_cache_dir(dir: Option<PathBuf>) {
    let _ = CACHE_DIR.set(dir);
}

pub fn default_cache_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|d| d.join("honey").join("components"))
}

pub fn load_component(engine: &Engine, path: &Path) -> anyhow::Result<Component> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let Some(dir) = CACHE_DIR.get_or_init(default_cache_dir).clone() else {
        return Component::new(engine, &bytes)
            .map_err(anyhow::Error::from)
            .context("compiling component");
    };
    let mut hasher = Sha256::new();
    hasher.update(&bytes);
    std::hash::Hash::hash(
        &engine.precompile_compatibility_hash(),
        &mut HashWriter(&mut hasher),
    );
    let key: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let cached = dir.join(format!("{key}.cwasm"));

    if cached.is_file() {
        // SAFETY: the file was written by `Engine::precompile_component` of an engine with the
        // same compatibility hash (it is part of the file name), into our own cache directory.
        match unsafe { Component::deserialize_file(engine, &cached) } {
            Ok(c) => {
                tracing::info!(path = %path.display(), "compile cache: hit");
                return Ok(c);
            }
            Err(e) => tracing::warn!(error = %e, "ignoring unusable compile cache entry"),
        }
    }
    tracing::info!(path = %path.display(), "compile cache: miss, compiling");
    let compiled = engine
        .precompile_component(&bytes)
        .map_err(anyhow::Error::from)
        .context("compiling component")?;
    if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| {
        let tmp = dir.join(format!("{key}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, &compiled)?;
        std::fs::rename(&tmp, &cached)
    }) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot write compile cache");
    }
    // SAFETY: these bytes were produced just now by `precompile_component` on this engine.
    unsafe { Component::deserialize(engine, &compiled) }
        .map_err(anyhow::Error::from)
        .context("loading compiled component")
}

struct HashWriter<'a>(&'a mut Sha256);

impl std::hash::Hasher for HashWriter<'_> {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}
