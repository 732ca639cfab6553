// whatsapp-web.js pulls in puppeteer; the tests drive RemoteAuth without a browser, so never download one.
module.exports = { skipDownload: true }
