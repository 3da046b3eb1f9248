"""Telegram's own limits that tgrelay relies on, in one place, each with the Bot API doc that
states it (https://core.telegram.org/bots/api). tgrelay's own budgets (a reply's length, buttons
per keyboard, turns) live beside the code they protect. No imports: the webhook reads this too.

The fake Bot API (local/tgrelay_local/fakes.py) keeps its own copies on purpose: a limit wrong
here must not be wrong there too.
"""

# sendMessage, text: "1-4096 characters after entities parsing" - counted in UTF-16 code units.
MESSAGE_TEXT_UNITS = 4096
# InlineKeyboardButton, callback_data: "Data to be sent in a callback query to the bot when the
# button is pressed, 1-64 bytes".
CALLBACK_DATA_BYTES = 64
# getFile: "For the moment, bots can download files of up to 20MB in size."
DOWNLOAD_BYTES = 20 * 1024 * 1024
# sendPhoto and the other send* methods, caption: "0-1024 characters after entities parsing".
CAPTION_UNITS = 1024
# "Sending files" (https://core.telegram.org/bots/api#sending-files), multipart/form-data: "10 MB
# max size for photos, 50 MB for other files". Read as decimal MB, the smaller reading
# (python-telegram-bot's FileSizeLimit reads them so too): a file between the two readings is
# never sent to be refused.
PHOTO_UPLOAD_BYTES = 10 * 1000 * 1000
FILE_UPLOAD_BYTES = 50 * 1000 * 1000
# setWebhook, secret_token: "1-256 characters" (sent back in X-Telegram-Bot-Api-Secret-Token).
SECRET_TOKEN_CHARS = 256
