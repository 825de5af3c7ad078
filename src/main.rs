use std::process::ExitCode;

// mimalloc returns the large, short-lived buffers of password hashing (19 MiB each) to the
// system, where glibc's per-thread arenas kept them and grew the server to hundreds of MiB;
// it is also faster for the many small allocations of request handling.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    authauth::cli::main()
}
