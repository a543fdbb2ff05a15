//! Exits 0 only when a panic unwinds: the guard's destructor runs and `catch_unwind` returns.

use std::sync::atomic::{AtomicBool, Ordering};

static DROPPED: AtomicBool = AtomicBool::new(false);

struct Guard;

impl Drop for Guard {
    fn drop(&mut self) {
        DROPPED.store(true, Ordering::SeqCst);
    }
}

fn main() {
    std::panic::set_hook(Box::new(|_| {}));
    let caught = std::panic::catch_unwind(|| {
        let _guard = Guard;
        panic!("unwind check");
    });
    if caught.is_err() && DROPPED.load(Ordering::SeqCst) {
        println!("panic unwound: destructor ran, catch_unwind caught it");
    } else {
        eprintln!("panic did not unwind");
        std::process::exit(1);
    }
}
