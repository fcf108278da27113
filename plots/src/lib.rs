//! `wow-plots` draws CDFs, histograms and bar charts (PNG and SVG) and computes summary
//! statistics from saved trial data only, so that any plot can be redrawn without rerunning.
