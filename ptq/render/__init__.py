"""Rendering: terminal tables, Markdown and HTML reports, SVG charts, trend series, exports."""
