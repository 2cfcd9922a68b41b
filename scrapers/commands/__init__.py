"""Project commands; ``COMMANDS_MODULE`` points here, so ``crawl`` below replaces Scrapy's."""
