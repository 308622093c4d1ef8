fn main() {
    // sqlx::migrate! embeds the migration folders; rebuild when a migration is added.
    println!("cargo:rerun-if-changed=migrations");
}
