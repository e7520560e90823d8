using System.Net;
using JobLog.Testing;
using NUnit.Framework;

namespace JobLog.AspNetCore.Tests.Dashboard;

/// <summary>Everything in the ledger is attacker-controlled: the pages must show it as text, never as markup.</summary>
public class HtmlSafetyTests
{
    private const string Script = "<script>alert(1)</script>";
    private const string Img = "\"><img src=x onerror=alert(1)>";
    private const string Hostile = Script + Img + "'><svg onload=alert(2)>&amp;";

    private DashboardHost _host = null!;
    private TaskLog _task = null!;
    private InputRequestLog _input = null!;
    private OutputRequestLog _output = null!;
    private CommandLog _command = null!;

    [SetUp]
    public async Task SetUp()
    {
        _host = await DashboardHost.StartAsync(TestLedger.Sqlite());
        var now = DateTime.UtcNow;
        _task = Rows.Task("Hostile" + Script, now.AddMinutes(-2), TaskState.Failed, input: "Email=" + Hostile, queue: "queue" + Img);
        _task.TaskKwargs = "{\"Email\":\"" + Hostile.Replace("\"", "\\\"") + "\"}";
        _task.SourceAddress = "javascript:alert(1)" + Img;
        var run = Rows.Run(_task, 0, TaskRunState.Failed, 0.1, 0.3, error: "InvalidOperationException: " + Hostile, output: "info: " + Hostile);
        _input = new InputRequestLog
        {
            Id = Guid.NewGuid(), Host = "example.test" + Img, Method = "POST", Path = "/login/" + Script, Queries = "{\"q\":\"" + Script + "\"}",
            RequestTimestamp = now.AddMinutes(-1), ResponseTimestamp = now.AddMinutes(-1).AddMilliseconds(30), ResponseCode = 400,
            Status = RequestLogStatus.Warning, RequestHeaders = "{\"User-Agent\":\"" + Script + "\"}", RequestBody = Hostile,
            ResponseBody = Hostile, Ip = "203.0.113.9", UserId = "u" + Img, Slug = "login" + Script,
        };
        _output = new OutputRequestLog
        {
            Id = Guid.NewGuid(), Host = "psp.test", Method = "GET", Path = "/pay" + Img, RequestTimestamp = now.AddMinutes(-1),
            ResponseTimestamp = now.AddMinutes(-1).AddMilliseconds(80), ResponseCode = 500, Status = RequestLogStatus.Error,
            ResponseBody = Hostile, ErrorDescription = Hostile, InputRequestId = _input.Id,
            RelatedObjects = [new OutputRequestRelatedObject { Id = Guid.NewGuid(), TaskRunLogId = run.Id }, new OutputRequestRelatedObject { Id = Guid.NewGuid(), ContentType = "Order" + Script, ObjectId = Img }],
        };
        _command = new CommandLog
        {
            Id = Guid.NewGuid(), Name = "import" + Script, Input = "--file " + Hostile, Start = now.AddMinutes(-3), Stop = now.AddMinutes(-2),
            Output = Hostile, ErrorMessage = Hostile, IsSuccessful = false, ExitCode = 1, ExecutedFromCommandLine = true,
        };
        await _host.SeedAsync(_task, run, _input, _output, _command);
    }

    [TearDown]
    public async Task TearDown() => await _host.DisposeAsync();

    [Test]
    public async Task EveryPage_ShowsBidiControlsVisibly_NeverAsCharactersThatReorderText()
    {
        // "invoice\u202Efdp.exe" shows as "invoiceexe.pdf"; the isolates can hide or reorder what follows; the marks
        // (LRM, RLM, ALM) are invisible and turn the punctuation beside them around within right-to-left text.
        const string Bidi = "invoice\u202Efdp.exe \u202A\u202B\u202C\u202D \u2066\u2067\u2068\u2069 \u200E\u200F\u061Cend";
        foreach (var url in await SeedEveryKindAsync("Bidi", Bidi))
        {
            var html = await _host.GetStringAsync(url);
            var decoded = WebUtility.HtmlDecode(html);

            Assert.That(decoded.Where(c => c is >= '\u202a' and <= '\u202e' or >= '\u2066' and <= '\u2069' or '\u200e' or '\u200f' or '\u061c'), Is.Empty, url);
            if (url != "/joblog")
            {
                Assert.That(decoded, Does.Contain("[U+202E]").And.Contain("[U+200E][U+200F][U+061C]"), url);
            }
        }
    }

    [Test]
    public async Task EveryPage_ShowsTerminalControlCharactersVisibly_SoACopiedErrorCarriesNoEscapeSequence()
    {
        // Session 40 (hostile), in Chromium over the real Worker: ESC, BEL, NUL, DEL and the C1 CSI reached the page as
        // characters (an HTML character reference is still the character): invisible there, and an operator who copies an
        // error or output into a terminal pastes "\u001b]0;...\u0007" (retitles, rewrites the screen). Line feeds and tabs stay.
        const string Terminal = "red\u001b[31m title\u001b]0;pwned\u0007 nul\u0000 del\u007f csi\u009b2J line\nnext\ttab end";
        foreach (var url in await SeedEveryKindAsync("Ansi", Terminal))
        {
            var html = await _host.GetStringAsync(url);
            var decoded = WebUtility.HtmlDecode(html);

            Assert.That(decoded.Where(c => char.IsControl(c) && c is not ('\n' or '\r' or '\t')).Select(c => (int)c), Is.Empty, url);
            if (url != "/joblog")
            {
                Assert.That(decoded, Does.Contain("red[U+001B][31m title[U+001B]]0;pwned[U+0007]").And.Contain("del[U+007F] csi[U+009B]2J"), url);
            }
        }
    }

    [Test]
    public async Task EveryPage_ShowsInvisibleCharactersVisibly_WhereTheyHideInText_AndLeavesEmojiAndScriptJoinersAlone()
    {
        // "Charge\u200BCard" reads as "ChargeCard" (another type, another header, another user); tag characters and
        // Hangul fillers are blank. Joiners between letters of scripts that need them (emoji sequences, Persian, Indic)
        // are text and stay characters; between Latin letters they only hide.
        const string Hidden = "Charge\u200BCard \u2060\uFEFF\u00AD\u180E\u2061\u034F\u3164\u115F zw\u200Dj zw\u200Cnj tag\U000E0041\U000E007F end";
        const string Genuine = "\U0001F468\u200D\U0001F469 \u0645\u06CC\u200C\u062E\u0648\u0627\u0647\u0645";
        const string Text = Hidden + " " + Genuine;
        foreach (var url in await SeedEveryKindAsync("Zw", Text))
        {
            var decoded = WebUtility.HtmlDecode(await _host.GetStringAsync(url));

            Assert.That(new[] { "Charge\u200BCard", "zw\u200Dj", "\U000E0041" }.Where(raw => decoded.Contains(raw, StringComparison.Ordinal)), Is.Empty, url);
            Assert.That(decoded.Where(c => c is '\u200B' or '\u2060' or '\uFEFF' or '\u00AD' or '\u180E' or '\u2061' or '\u034F' or '\u3164' or '\u115F'),
                Is.Empty, url);
            if (url != "/joblog")
            {
                Assert.That(decoded, Does.Contain("Charge[U+200B]Card [U+2060][U+FEFF][U+00AD][U+180E][U+2061][U+034F][U+3164][U+115F] zw[U+200D]j zw[U+200C]nj tag[U+E0041][U+E007F] end"), url);
                Assert.That(decoded.Contains(Genuine, StringComparison.Ordinal), Is.True, url + ": joiners inside emoji and Persian text are text");
            }
        }
    }

    /// <summary>A task, a run, requests and a command with <paramref name="text"/> in every field; the pages that show them.</summary>
    private async Task<string[]> SeedEveryKindAsync(string name, string text)
    {
        var now = DateTime.UtcNow;
        var task = Rows.Task(name + text, now, TaskState.Failed, input: "File=" + text, queue: "queue" + text);
        var run = Rows.Run(task, 0, TaskRunState.Failed, 0.1, 0.3, error: "IOException: " + text, output: "info: " + text);
        var input = new InputRequestLog
        {
            Id = Guid.NewGuid(), Host = "example.test", Method = "GET", Path = "/files/" + text, RequestTimestamp = now, ResponseTimestamp = now,
            ResponseCode = 200, Status = RequestLogStatus.Info, RequestBody = text, UserId = "u" + text, Slug = "files", RequestHeaders = "X-Tenant: " + text,
        };
        var output = new OutputRequestLog
        {
            Id = Guid.NewGuid(), Host = "psp.test", Method = "GET", Path = "/pay/" + text, RequestTimestamp = now, ResponseTimestamp = now,
            ResponseCode = 500, Status = RequestLogStatus.Error, ResponseBody = text, ErrorDescription = text,
        };
        var command = new CommandLog
        {
            Id = Guid.NewGuid(), Name = "import" + text, Input = "--file " + text, Start = now, Stop = now, Output = text, ErrorMessage = text,
            IsSuccessful = false, ExitCode = 1,
        };
        await _host.SeedAsync(task, run, input, output, command);
        return
        [
            "/joblog", "/joblog/tasks", $"/joblog/tasks/{task.Id}", "/joblog/requests/in", $"/joblog/requests/in/{input.Id}",
            "/joblog/requests/out", $"/joblog/requests/out/{output.Id}", "/joblog/commands", $"/joblog/commands/{command.Id}",
        ];
    }

    private static IEnumerable<string> Pages(HtmlSafetyTests t) =>
    [
        "/joblog", "/joblog/?window=day", "/joblog/tasks", $"/joblog/tasks/{t._task.Id}", "/joblog/tasks?q=" + Uri.EscapeDataString("<script>"),
        "/joblog/requests/in", $"/joblog/requests/in/{t._input.Id}", "/joblog/requests/out", $"/joblog/requests/out/{t._output.Id}",
        "/joblog/commands", $"/joblog/commands/{t._command.Id}",
    ];

    [Test]
    public async Task EveryPage_ShowsHostileLedgerContentEncoded()
    {
        foreach (var url in Pages(this))
        {
            var html = await _host.GetStringAsync(url);

            Assert.That(html, Does.Not.Contain("<script>alert"), url);
            Assert.That(html, Does.Not.Contain("<img src=x"), url);
            Assert.That(html, Does.Not.Contain("<svg onload"), url);
            Assert.That(html, Does.Not.Contain("onerror=alert(1)>"), url);
            Assert.That(CountOccurrences(html, "<script"), Is.EqualTo(1), url + ": only the dashboard's own script tag");
        }
    }

    [Test]
    public async Task EveryFragment_ShowsHostileLedgerContentEncoded()
    {
        foreach (var url in Pages(this))
        {
            foreach (var fragment in new[] { "main", "list" })
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, url) { Headers = { { "X-JobLog-Fragment", fragment } } };
                using var response = await _host.Client.SendAsync(request);
                var html = await response.Content.ReadAsStringAsync();

                Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), url);
                // A page without that fragment answers whole, with the dashboard's own script tag.
                var scripts = html.StartsWith("<!doctype html>", StringComparison.Ordinal) ? 1 : 0;
                Assert.That(CountOccurrences(html, "<script"), Is.EqualTo(scripts), url + " " + fragment);
                Assert.That(html, Does.Not.Contain("<script>alert"), url + " " + fragment);
                Assert.That(html, Does.Not.Contain("<img src=x"), url + " " + fragment);
                Assert.That(html, Does.Not.Contain("<svg onload"), url + " " + fragment);
                Assert.That(html, Does.Not.Match(@"<[^>]+\son[a-z]+="), url + " " + fragment);
                Assert.That(string.Join(";", response.Headers.GetValues("Content-Security-Policy")), Does.Not.Contain("unsafe-inline"), url);
            }
        }
    }

    [Test]
    public async Task TaskDetail_ShowsTheHostileTextLiterallyInEveryField()
    {
        var html = await _host.GetStringAsync($"/joblog/tasks/{_task.Id}");

        var encodedScript = "&lt;script&gt;alert(1)&lt;/script&gt;";
        var encodedImg = "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;";
        Assert.That(html, Does.Contain("Hostile" + encodedScript), "name");
        Assert.That(html, Does.Contain("Email=" + encodedScript + encodedImg), "input");
        Assert.That(html, Does.Contain("InvalidOperationException: " + encodedScript), "error message");
        Assert.That(html, Does.Contain("info: " + encodedScript), "captured output");
        Assert.That(html, Does.Contain("&amp;amp;"), "an entity in the data stays text");
        Assert.That(html, Does.Not.Contain("href=\"javascript:"), "ledger values never become links");
    }

    [Test]
    public async Task Api_EscapesMarkupInJson()
    {
        var json = await _host.GetStringAsync($"/joblog/api/tasks/{_task.Id}");

        Assert.That(json, Does.Not.Contain("<script>"));
        Assert.That(json, Does.Contain("\\u003Cscript\\u003E"));
    }

    [Test]
    public async Task Responses_CarryAContentSecurityPolicyWithoutInlineScript()
    {
        foreach (var url in new[] { "/joblog", $"/joblog/tasks/{_task.Id}", "/joblog/api/tasks", "/joblog/assets/joblog.js", "/joblog/tasks?state=nonsense" })
        {
            using var response = await _host.Client.GetAsync(url);
            var csp = string.Join(";", response.Headers.GetValues("Content-Security-Policy"));

            Assert.That(csp, Does.Contain("script-src 'self'"), url);
            Assert.That(csp, Does.Not.Contain("unsafe-inline"), url);
            Assert.That(csp, Does.Contain("frame-ancestors 'none'"), url);
            Assert.That(response.Headers.GetValues("X-Content-Type-Options"), Is.EqualTo(new[] { "nosniff" }), url);
            Assert.That(response.Headers.GetValues("X-Frame-Options"), Is.EqualTo(new[] { "DENY" }), url);
        }
    }

    [Test]
    public async Task Pages_HaveNoInlineHandlersOrStyles()
    {
        foreach (var url in Pages(this))
        {
            var html = await _host.GetStringAsync(url);

            Assert.That(html, Does.Not.Match(@"<[^>]+\son[a-z]+="), url + ": inline event handler");
            Assert.That(html, Does.Not.Match(@"<[^>]+\sstyle="), url + ": inline style");
            Assert.That(html, Does.Not.Contain("<style"), url);
        }
    }

    [Test]
    public async Task Script_InsertsLedgerContentAsTextOnly()
    {
        var js = await _host.GetStringAsync("/joblog/assets/joblog.js");

        Assert.That(js, Does.Not.Contain("innerHTML"));
        Assert.That(js, Does.Not.Contain("outerHTML"));
        Assert.That(js, Does.Not.Contain("insertAdjacentHTML"));
        Assert.That(js, Does.Not.Contain("eval("));
        Assert.That(js, Does.Contain("textContent"));
    }

    [Test]
    public async Task UnknownTask_IsNotFound()
    {
        await _host.GetStringAsync($"/joblog/tasks/{Guid.NewGuid()}", HttpStatusCode.NotFound);
        await _host.GetStringAsync($"/joblog/api/tasks/{Guid.NewGuid()}", HttpStatusCode.NotFound);
    }

    private static int CountOccurrences(string text, string value)
    {
        var count = 0;
        for (var i = text.IndexOf(value, StringComparison.OrdinalIgnoreCase); i >= 0; i = text.IndexOf(value, i + 1, StringComparison.OrdinalIgnoreCase))
        {
            count++;
        }

        return count;
    }
}
