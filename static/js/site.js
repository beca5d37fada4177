// Small progressive enhancements; the site works without this file.
