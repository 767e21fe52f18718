//! Text console on the linear framebuffer Limine sets up, so a machine
//! without a serial port still shows the log.
//!
//! Text is kept as a grid of cells. At the bottom the grid scrolls by half a
//! screen at once and is redrawn: a redraw per line would make the log
//! crawl (tens of milliseconds per line under emulation).
//! The framebuffer is only ever written, never read: it is mapped
//! write-combining, where reads are uncached and slow on real hardware.

use noto_sans_mono_bitmap::{FontWeight, RasterHeight, get_raster, get_raster_width};

const FONT_WEIGHT: FontWeight = FontWeight::Regular;
const FONT_HEIGHT: RasterHeight = RasterHeight::Size16;
const CELL_WIDTH: usize = get_raster_width(FONT_WEIGHT, FONT_HEIGHT);
const CELL_HEIGHT: usize = FONT_HEIGHT.val();
const MAX_COLUMNS: usize = 320;
const MAX_ROWS: usize = 135;
/// Light grey on black, as 8-bit channels.
const FOREGROUND: [u32; 3] = [0xd0, 0xd0, 0xd0];

pub struct PixelFormat {
    pub bytes_per_pixel: usize,
    /// (shift, size in bits) of each channel.
    pub red: (u8, u8),
    pub green: (u8, u8),
    pub blue: (u8, u8),
}

pub struct FramebufferConsole {
    base: *mut u8,
    pitch: usize,
    format: PixelFormat,
    columns: usize,
    rows: usize,
    cells: [[u8; MAX_COLUMNS]; MAX_ROWS],
    column: usize,
    row: usize,
}

// SAFETY: the console is only reached through the console mutex; the raw
// pointer is the framebuffer mapping, valid for the nucleus's lifetime.
unsafe impl Send for FramebufferConsole {}

impl FramebufferConsole {
    /// # Safety
    /// `base` must point to a mapped framebuffer of `height` lines of `pitch`
    /// bytes that nothing else writes.
    pub unsafe fn new(
        base: *mut u8,
        width: usize,
        height: usize,
        pitch: usize,
        format: PixelFormat,
    ) -> Option<Self> {
        if !(2..=4).contains(&format.bytes_per_pixel) || width < CELL_WIDTH || height < CELL_HEIGHT
        {
            return None;
        }
        let mut console = FramebufferConsole {
            base,
            pitch,
            format,
            columns: (width / CELL_WIDTH).min(MAX_COLUMNS),
            rows: (height / CELL_HEIGHT).min(MAX_ROWS),
            cells: [[b' '; MAX_COLUMNS]; MAX_ROWS],
            column: 0,
            row: 0,
        };
        for y in 0..height {
            console.fill_line(y, 0, width);
        }
        Some(console)
    }

    pub fn write_str(&mut self, s: &str) {
        for c in s.chars() {
            match c {
                '\n' => self.newline(),
                '\r' => self.column = 0,
                c => {
                    if self.column == self.columns {
                        self.newline();
                    }
                    let byte = if c.is_ascii() && !c.is_ascii_control() {
                        c as u8
                    } else {
                        b'?'
                    };
                    self.cells[self.row][self.column] = byte;
                    self.draw_cell(self.row, self.column);
                    self.column += 1;
                }
            }
        }
    }

    fn newline(&mut self) {
        self.column = 0;
        if self.row + 1 < self.rows {
            self.row += 1;
            return;
        }
        let shift = (self.rows / 2).max(1);
        self.cells.copy_within(shift..self.rows, 0);
        for row in self.rows - shift..self.rows {
            self.cells[row] = [b' '; MAX_COLUMNS];
        }
        self.row = self.rows - shift;
        for row in 0..self.rows {
            for column in 0..self.columns {
                self.draw_cell(row, column);
            }
        }
    }

    fn draw_cell(&mut self, row: usize, column: usize) {
        let c = self.cells[row][column] as char;
        let Some(raster) = get_raster(c, FONT_WEIGHT, FONT_HEIGHT) else {
            return;
        };
        for (dy, line) in raster.raster().iter().enumerate() {
            let y = row * CELL_HEIGHT + dy;
            for (dx, &intensity) in line.iter().enumerate() {
                let color = self.color(intensity);
                self.put_pixel(column * CELL_WIDTH + dx, y, color);
            }
        }
    }

    fn color(&self, intensity: u8) -> u32 {
        let [r, g, b] = FOREGROUND.map(|channel| channel * intensity as u32 / 255);
        // Scale each 8-bit value to its channel's width (5 or 6 bits at 16 bpp).
        let place =
            |value: u32, (shift, size): (u8, u8)| (value >> 8u8.saturating_sub(size)) << shift;
        place(r, self.format.red) | place(g, self.format.green) | place(b, self.format.blue)
    }

    fn fill_line(&mut self, y: usize, x: usize, width: usize) {
        for x in x..x + width {
            self.put_pixel(x, y, 0);
        }
    }

    fn put_pixel(&mut self, x: usize, y: usize, color: u32) {
        let bpp = self.format.bytes_per_pixel;
        let offset = y * self.pitch + x * bpp;
        // SAFETY (both writes): `new` checked the geometry; x < columns *
        // CELL_WIDTH <= width and y < rows * CELL_HEIGHT <= height, so the
        // pixel lies inside the buffer.
        if bpp == 4 {
            unsafe { self.base.add(offset).cast::<u32>().write_volatile(color) };
            return;
        }
        for (i, byte) in color.to_le_bytes().iter().take(bpp).enumerate() {
            unsafe { self.base.add(offset + i).write_volatile(*byte) };
        }
    }
}
