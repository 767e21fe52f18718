//! Shared by the test guests (each is a binary in src/bin).
#![no_std]
