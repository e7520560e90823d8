using System.Net;
using System.Text;
using Microsoft.EntityFrameworkCore;
using NUnit.Framework;

namespace JobLog.Worker.Tests.Hostile40;

/// <summary>
/// The real Worker (Kestrel, the dashboard, the JSON API, the demo endpoints) probed over a bare socket with what
/// TestServer never sees: request lines and headers at Kestrel's limits, bytes that are not UTF-8, HTTP/1.0, pipelining,
/// odd methods, spoofed hosts, bodies that lie about their length. Each answer must be a clear status, never a 500, never
/// a stack frame or SQL; the process keeps serving; no task, run or failure action changes.
/// </summary>
[TestFixture]
[NonParallelizable]
public class KestrelProbeTests
{
    private static readonly Guid TaskId = Guid.Parse("0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9");

    private WorkerHost _worker = null!;
    private string _before = "";

    [OneTimeSetUp]
    public async Task StartAsync()
    {
        _worker = await WorkerHost.StartAsync();
        var rows = DemoLedger.History(DateTime.UtcNow);
        var at = DateTime.UtcNow.AddMinutes(-5);
        var task = new TaskLog
        {
            Id = TaskId, Name = "ChargeCard", QueueName = "charge-card", Input = "CustomerId=1", DispatchedAt = at, Start = at, Stop = at,
            State = TaskState.Failed, Host = "worker-1",
        };
        task.Runs.Add(new TaskRunLog
        {
            Id = Guid.NewGuid(), TaskId = TaskId, Name = task.Name, ConsumerType = "Demo.ChargeCardConsumer", Start = at, Stop = at,
            State = TaskRunState.Failed, ErrorMessage = "Declined by the bank",
        });
        rows.Add(task);
        await _worker.SeedAsync(rows);
    }

    [SetUp]
    public async Task SnapshotAsync() => _before = await LedgerStateAsync();

    [OneTimeTearDown]
    public async Task StopAsync()
    {
        if (_worker is not null)
        {
            await _worker.DisposeAsync();
        }
    }

    private static string Get(string target, string extraHeaders = "", string version = "HTTP/1.1", string method = "GET") =>
        $"{method} {target} {version}\r\nHost: 127.0.0.1\r\n{extraHeaders}Connection: close\r\n\r\n";

    private static string Post(string target, string contentType, string body, string extraHeaders = "") =>
        $"POST {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extraHeaders}Content-Type: {contentType}\r\nContent-Length: {Encoding.UTF8.GetByteCount(body)}\r\nConnection: close\r\n\r\n{body}";

    private static string Nested(int depth) => new string('[', depth) + new string(']', depth);

    private static IEnumerable<TestCaseData> Probes()
    {
        TestCaseData Case(string name, string request, params int[] statuses) =>
            new TestCaseData(RawSocket.Ascii(request), statuses).SetArgDisplayNames(name);
        TestCaseData Bytes(string name, byte[] request, params int[] statuses) => new TestCaseData(request, statuses).SetArgDisplayNames(name);

        // Bytes that are not UTF-8 (overlong '/', a lone continuation byte, a surrogate) and NUL, escaped and raw.
        yield return Case("overlong slash escaped in the path", Get("/joblog/tasks/%C0%AF..%C0%AF..%C0%AFetc%C0%AFpasswd"), 400, 404);
        yield return Case("overlong slash escaped in an api path", Get("/joblog/api/tasks/%C0%AF"), 400, 404);
        yield return Case("invalid UTF-8 escaped in the query", Get("/joblog/api/tasks?name=%C0%AF%E0%80%AF%FF%FE&q=%ED%A0%80x"), 200, 400);
        yield return Case("invalid UTF-8 escaped in a page's query", Get("/joblog/tasks?q=%C0%AF%ED%A0%80abc&queue=%FF"), 200, 400);
        yield return Bytes("raw bytes 0xFF 0xC0 in the path", [.. RawSocket.Ascii("GET /joblog/"), 0xFF, 0xC0, 0xAF, .. RawSocket.Ascii(" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")], 400, 404);
        yield return Bytes("raw bytes 0xFF in the query", [.. RawSocket.Ascii("GET /joblog/api/tasks?q="), 0xFF, 0xFE, .. RawSocket.Ascii("abc HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")], 200, 400);
        yield return Case("%00 in the path", Get("/joblog/tasks%00.html"), 400, 404);
        yield return Case("%00 in a route id", Get("/joblog/api/tasks/" + TaskId + "%00"), 400, 404);
        yield return Case("%00 in the query", Get("/joblog/api/tasks?name=a%00b&q=%00abc&queue=%00"), 200, 400);
        yield return Case("%00 in a page's query", Get("/joblog/failures?group=%00&by=%00"), 200, 400);
        yield return Bytes("raw NUL in the request line", [.. RawSocket.Ascii("GET /joblog/tasks"), 0, .. RawSocket.Ascii(" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")], 400);
        yield return Bytes("raw NUL in a header value", [.. RawSocket.Ascii("GET /joblog HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: a"), 0, .. RawSocket.Ascii("b\r\nConnection: close\r\n\r\n")], 400);

        // Kestrel's limits: 8 KB request line, 32 KB of headers, 100 headers.
        yield return Case("a 64 KB query string", Get("/joblog/api/tasks?q=" + new string('a', 64 * 1024)), 414);
        yield return Case("a 64 KB page query string", Get("/joblog/tasks?name=%41" + new string('b', 64 * 1024)), 414);
        yield return Case("a query just under the request line limit", Get("/joblog/api/tasks?name=" + new string('n', 8000)), 200, 400);
        yield return Case("one header of 40 KB", Get("/joblog/api/overview", "X-Big: " + new string('h', 40 * 1024) + "\r\n"), 431);
        yield return Case("a cookie of 40 KB", Get("/joblog", "Cookie: a=" + new string('c', 40 * 1024) + "\r\n"), 431);
        yield return Case("200 headers", Get("/joblog/api/overview", string.Concat(Enumerable.Range(0, 200).Select(i => $"X-H{i}: v\r\n"))), 431);
        yield return Case("100 small headers", Get("/joblog/api/overview", string.Concat(Enumerable.Range(0, 95).Select(i => $"X-H{i}: v\r\n"))), 200);

        // Versions, methods and targets.
        yield return Case("HTTP/1.0 with a loopback Host", "GET /joblog/api/overview HTTP/1.0\r\nHost: localhost\r\n\r\n", 200);
        yield return Case("HTTP/1.0 page", "GET /joblog/tasks HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", 200);
        yield return Case("HTTP/1.1 without Host", "GET /joblog/api/overview HTTP/1.1\r\nConnection: close\r\n\r\n", 400);
        yield return Case("HTTP/2.0 on an HTTP/1 connection", "GET /joblog HTTP/2.0\r\nHost: 127.0.0.1\r\n\r\n", 400, 505);
        yield return Case("HTTP/9.9", "GET /joblog HTTP/9.9\r\nHost: 127.0.0.1\r\n\r\n", 400, 505);
        yield return Case("two Host headers", "GET /joblog HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n", 400);
        yield return Case("absolute-form target for another host", Get("http://evil.example/joblog/api/overview"), 400, 403);
        yield return Case("Host header of another site", "GET /joblog/api/overview HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n", 403);
        yield return Case("Host header of another site on a page", "GET /joblog/tasks HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n", 403);
        yield return Case("asterisk-form OPTIONS", "OPTIONS * HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", 200, 204, 400, 404, 405);
        yield return Case("OPTIONS on a list", Get("/joblog/api/tasks", method: "OPTIONS"), 204);
        yield return Case("TRACE on a page", Get("/joblog/tasks", method: "TRACE"), 405);
        yield return Case("TRACE on the root", Get("/", method: "TRACE"), 405);
        yield return Case("TRACE with a cookie to echo", Get("/joblog/api/overview", "Cookie: session=secret-cookie\r\n", method: "TRACE"), 405);
        yield return Case("CONNECT", "CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\nConnection: close\r\n\r\n", 400, 403, 404, 405);
        yield return Case("lower-case get", Get("/joblog/api/overview", method: "get"), 200, 405);
        yield return Case("mixed-case GeT on a page", Get("/joblog/tasks", method: "GeT"), 200, 405);
        yield return Case("lower-case post on an action", Post("/joblog/failures/actions/retry", "application/json", "{}").Replace("POST ", "post ", StringComparison.Ordinal), 403, 405);
        yield return Case("a method of 1,000 letters", Get("/joblog", method: new string('M', 1000)), 400, 405);
        yield return Case("a method with a control character", Get("/joblog", method: "GE\u0001T"), 400);

        // HEAD and conditional or partial requests on the assets and pages.
        yield return Case("If-None-Match * on an asset", Get("/joblog/assets/joblog.css", "If-None-Match: *\r\n"), 200, 304);
        yield return Case("If-None-Match of 8 KB on an asset", Get("/joblog/assets/joblog.js", "If-None-Match: \"" + new string('e', 8000) + "\"\r\n"), 200, 304);
        yield return Case("Range on an asset", Get("/joblog/assets/joblog.js", "Range: bytes=0-9\r\n"), 200, 206);
        yield return Case("Range past the end of an asset", Get("/joblog/assets/joblog.js", "Range: bytes=99999999-\r\n"), 200, 416);
        yield return Case("2,000 ranges on an asset", Get("/joblog/assets/joblog.js", "Range: bytes=" + string.Join(",", Enumerable.Range(0, 2000).Select(i => $"{i}-{i}")) + "\r\n"), 200, 206, 416);
        yield return Case("Range on the task list", Get("/joblog/api/tasks", "Range: bytes=0-9\r\n"), 200);
        yield return Case("If-None-Match on a task", Get("/joblog/api/tasks/" + TaskId, "If-None-Match: *\r\n"), 200, 304);
        yield return Case("an asset that is not one", Get("/joblog/assets/..%2F..%2Fappsettings.json"), 404);
        yield return Case("an asset named by a backslash path", Get("/joblog/assets/..%5C..%5Cappsettings.json"), 404);

        // The actions (off in the Worker: read-only) and the demo's JSON endpoint, with hostile bodies.
        yield return Case("JSON nested 10,000 deep to retry", Post("/joblog/failures/actions/retry", "application/json", Nested(10_000)), 403);
        yield return Case("JSON with duplicate keys to resolve", Post("/joblog/failures/actions/resolve", "application/json", "{\"scope\":\"group\",\"scope\":\"filter\",\"group\":\"a\",\"group\":\"b\"}"), 403);
        yield return Case("a form without antiforgery to archive", Post("/joblog/failures/actions/archive", "application/x-www-form-urlencoded", "scope=ids&ids=" + TaskId), 403);
        yield return Case("a form without antiforgery to a task action", Post($"/joblog/tasks/{TaskId}/actions/retry", "application/x-www-form-urlencoded", "a=b"), 403, 404, 405);
        yield return Case("JSON nested 10,000 deep to the demo login", Post("/demo/login", "application/json", "{\"username\":" + Nested(10_000) + "}"), 400);
        yield return Case("JSON with duplicate keys to the demo login", Post("/demo/login", "application/json", "{\"username\":\"demo\",\"username\":\"x\",\"password\":\"demo\"}"), 200, 400, 401);
        // Post() counts UTF-8 bytes; Latin-1 sends "\u00c0\u00af" as the two bytes of an overlong '/', as long as "ab".
        yield return Case("invalid UTF-8 in the demo login's JSON", Post("/demo/login", "application/json", "{\"username\":\"ab\",\"password\":\"a\"}").Replace("\"ab\"", "\"\u00c0\u00af\"", StringComparison.Ordinal), 400);
        yield return Case("HTTP/1.0 without Host: not a loopback name, so not local", "GET /joblog/api/overview HTTP/1.0\r\n\r\n", 403);
        yield return Case("a body that claims 1 TB", "POST /demo/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000000000000\r\nConnection: close\r\n\r\n{", 413);
        yield return Case("a Content-Length past long", "POST /demo/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 99999999999999999999999\r\nConnection: close\r\n\r\n", 400);
        yield return Case("a negative Content-Length", "POST /demo/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -1\r\nConnection: close\r\n\r\n", 400);
        yield return Case("Content-Length and chunked together", "POST /demo/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\nGET /joblog HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400, 401);
        yield return Case("a chunk size that is not hex", "POST /demo/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", 400);
        yield return Case("a chunk size past long", "POST /demo/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nFFFFFFFFFFFFFFFFFFFF\r\n{}\r\n0\r\n\r\n", 400, 413);
        yield return Case("an unknown transfer coding", "POST /demo/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: gzip\r\nConnection: close\r\n\r\n{}", 400, 501);
    }

    [TestCaseSource(nameof(Probes))]
    public async Task AHostileRequestOverASocket_IsAClearStatus_NeverA500_AndTheWorkerKeepsServing(byte[] request, int[] statuses)
    {
        var answer = await RawSocket.ExchangeAsync(_worker.Url, request);

        var status = RawSocket.Statuses(answer);
        Assert.That(status, Is.Not.Empty, "no HTTP answer: " + Cut(answer));
        TestContext.Out.WriteLine($"answered {status[0]}: {answer.Split("\r\n\r\n", 2).ElementAtOrDefault(1)?[..Math.Min(160, answer.Split("\r\n\r\n", 2)[1].Length)]}");
        Assert.That(statuses, Does.Contain(status[0]), Cut(answer));
        AssertNothingLeaks(answer);
        await AssertStillServingAndUnchangedAsync();
    }

    [Test]
    public async Task PipelinedRequests_AreAnsweredInOrder_EachOnce()
    {
        var one = $"GET /joblog/api/tasks/{TaskId} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
        var request = one + "GET /joblog/api/tasks/zzz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" + "HEAD /joblog/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            + "GET /joblog/api/overview HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" + one;

        var answer = await RawSocket.ExchangeAsync(_worker.Url, RawSocket.Ascii(request));

        Assert.That(RawSocket.Statuses(answer), Is.EqualTo(new[] { 200, 404, 200, 200 }), Cut(answer));
        Assert.That(answer, Does.Contain(TaskId.ToString()));
        AssertNothingLeaks(answer);
    }

    [Test]
    public async Task Head_OnEveryGetRoute_AnswersAsGetDoes_WithoutABody()
    {
        var group = await AnyFailureGroupAsync();
        var routes = new[]
        {
            "/", "/healthz", "/joblog", "/joblog/", "/joblog/tasks", "/joblog/tasks/" + TaskId, "/joblog/requests/in", "/joblog/requests/out",
            "/joblog/commands", "/joblog/hosts", "/joblog/failures", "/joblog/failures/groups/" + group, "/joblog/assets/joblog.css",
            "/joblog/assets/joblog.js", "/joblog/assets/favicon.svg", "/joblog/api/overview", "/joblog/api/tasks", "/joblog/api/tasks/" + TaskId,
            "/joblog/api/requests/in", "/joblog/api/requests/out", "/joblog/api/commands", "/joblog/api/hosts", "/joblog/api/failures",
            "/joblog/api/failures/groups/" + group, "/joblog/api/failures/token", "/joblog/tasks/" + Guid.Empty, "/joblog/nothing", "/demo/echo?a=1",
        };
        using var client = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false }) { BaseAddress = new Uri(_worker.Url) };
        var offenders = new List<string>();

        foreach (var route in routes)
        {
            using var get = await client.GetAsync(route);
            using var head = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, route));
            var body = await head.Content.ReadAsByteArrayAsync();
            if (head.StatusCode != get.StatusCode || body.Length != 0)
            {
                offenders.Add($"{route}: GET {(int)get.StatusCode}, HEAD {(int)head.StatusCode} with {body.Length} bytes");
            }
        }

        Assert.That(offenders, Is.Empty);
        await AssertStillServingAndUnchangedAsync();
    }

    [Test]
    public async Task SpoofedForwardedHeaders_NeverReachALinkOrARedirect()
    {
        // The Host must be loopback (DNS rebinding); X-Forwarded-Host / X-Forwarded-Proto are not honoured by the Worker,
        // so no absolute link or Location can name them.
        const string Evil = "evil.example";
        var headers = $"X-Forwarded-Host: {Evil}\r\nX-Forwarded-Proto: javascript\r\nX-Original-Host: {Evil}\r\nForwarded: host={Evil};proto=https\r\nX-Forwarded-Prefix: //{Evil}\r\n";
        foreach (var (target, host) in new[]
        {
            ("/", "127.0.0.1"), ("/", "localhost"), ("/joblog", "localhost"), ("/joblog/tasks?state=failed", "127.0.0.1"), ("/joblog/tasks/" + TaskId, "[::1]"),
            ("/joblog/failures", "127.0.0.1"), ("/joblog/nothing", "127.0.0.1"), ("/joblog/api/tasks?limit=1", "127.0.0.1"), ("//" + Evil + "/joblog", "127.0.0.1"),
            ("/joblog//" + Evil, "127.0.0.1"), ("/%2F%2F" + Evil, "127.0.0.1"),
        })
        {
            var answer = await RawSocket.ExchangeAsync(
                _worker.Url, RawSocket.Ascii($"GET {target} HTTP/1.1\r\nHost: {host}\r\n{headers}Connection: close\r\n\r\n"));

            var status = RawSocket.Statuses(answer);
            Assert.That(status, Is.Not.Empty, target + ": " + Cut(answer));
            Assert.That(status[0], Is.Not.EqualTo(500), target + ": " + Cut(answer));
            Assert.That(answer, Does.Not.Contain(Evil).IgnoreCase.And.Not.Contain("javascript:").IgnoreCase, target + ": " + Cut(answer));
            var location = System.Text.RegularExpressions.Regex.Match(answer, @"(?mi)^Location: (.*)\r$");
            if (location.Success)
            {
                Assert.That(location.Groups[1].Value, Does.StartWith("/").And.Not.StartWith("//").And.Not.StartWith("/\\"), target);
            }
        }
    }

    [Test]
    public async Task ABodyThatNeverArrives_OrIsDribbled_HoldsNoLedgerConnectionOrLock_AndKestrelEndsIt()
    {
        // A client declares a body and sends it a byte at a time, or never: the request is parked in Kestrel (or in the
        // request recorder's read-ahead) while the ledger keeps writing and answering.
        var uri = new Uri(_worker.Url);
        var parked = new List<System.Net.Sockets.TcpClient>();
        try
        {
            for (var i = 0; i < 12; i++)
            {
                var tcp = new System.Net.Sockets.TcpClient();
                parked.Add(tcp);
                await tcp.ConnectAsync(uri.Host, uri.Port);
                var target = i % 2 == 0 ? "/demo/login" : "/joblog/failures/actions/retry";
                await tcp.GetStream().WriteAsync(RawSocket.Ascii(
                    $"POST {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{{\"use"));
            }

            using var client = new HttpClient { BaseAddress = new Uri(_worker.Url), Timeout = RawSocket.Bound };

            // While twelve requests hold their bodies back (more than the dashboard's 8 concurrent ledger reads), a
            // message is consumed and recorded, and every list still answers.
            var task = await _worker.PublishAndWaitAsync(new JobLog.Worker.Demo.ChargeCard(4242, 1.5m));
            Assert.That(task.State, Is.EqualTo(TaskState.Succeeded).Or.EqualTo(TaskState.Failed));
            foreach (var route in new[] { "/joblog/api/overview", "/joblog/api/tasks?limit=5", "/joblog/api/requests/in", "/joblog/failures", "/healthz" })
            {
                using var response = await client.GetAsync(route);
                Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), route);
            }

            // Dribble one byte more to each, then wait for Kestrel to end them (its minimum body rate: 240 bytes/s after
            // a 5 s grace period), bounded generously.
            foreach (var tcp in parked)
            {
                await tcp.GetStream().WriteAsync(RawSocket.Ascii("r"));
            }

            foreach (var tcp in parked)
            {
                using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(110));
                var answer = await ReadUntilAnsweredOrClosedAsync(tcp.GetStream(), bound.Token);
                var status = RawSocket.Statuses(answer);
                Assert.That(status.Count == 0 || status[0] is >= 400 and < 500 and not 404, Is.True, Cut(answer));
                AssertNothingLeaks(answer);
            }
        }
        finally
        {
            foreach (var tcp in parked)
            {
                tcp.Dispose();
            }
        }

        await AssertStillServingAndUnchangedAsync(allowNewTasks: true);
    }

    private static async Task<string> ReadUntilAnsweredOrClosedAsync(Stream stream, CancellationToken cancellationToken)
    {
        var received = new StringBuilder();
        var buffer = new byte[16 * 1024];
        while (true)
        {
            int read;
            try
            {
                read = await stream.ReadAsync(buffer, cancellationToken);
            }
            catch (IOException)
            {
                return received.ToString();
            }

            if (read == 0)
            {
                return received.ToString();
            }

            received.Append(Encoding.Latin1.GetString(buffer, 0, read));
            var text = received.ToString();
            var end = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            var length = System.Text.RegularExpressions.Regex.Match(text, @"(?mi)^Content-Length: (\d+)\r$");
            if (end >= 0 && length.Success && text.Length >= end + 4 + int.Parse(length.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture))
            {
                return text;
            }
        }
    }

    private async Task<string> AnyFailureGroupAsync()
    {
        using var client = new HttpClient { BaseAddress = new Uri(_worker.Url) };
        var json = await client.GetStringAsync("/joblog/api/failures");
        var id = System.Text.RegularExpressions.Regex.Match(json, "\"id\":\"([^\"]+)\"");
        Assert.That(id.Success, Is.True, json);
        return id.Groups[1].Value;
    }

    private static void AssertNothingLeaks(string answer)
    {
        // The seeded history's errors name Demo.* frames; the server's own would name these.
        foreach (var leak in new[] { "   at Microsoft.", "   at System.", "   at JobLog.", "SqliteException", "SQLite Error", "BadHttpRequestException", "JsonException", "SELECT ", "secret-cookie" })
        {
            Assert.That(answer.Contains(leak, StringComparison.Ordinal), Is.False, leak + " in " + Cut(answer));
        }

        Assert.That(RawSocket.Statuses(answer), Has.None.EqualTo(500), Cut(answer));
    }

    private async Task AssertStillServingAndUnchangedAsync(bool allowNewTasks = false)
    {
        using var client = new HttpClient { BaseAddress = new Uri(_worker.Url), Timeout = RawSocket.Bound };
        using var response = await client.GetAsync($"/joblog/api/tasks/{TaskId}");
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), "the Worker keeps serving");
        if (!allowNewTasks)
        {
            Assert.That(await LedgerStateAsync(), Is.EqualTo(_before), "no task, run, kept message or failure action changed");
        }
    }

    private Task<string> LedgerStateAsync() => _worker.QueryAsync(async db =>
    {
        var tasks = await db.TaskLogs.AsNoTracking().OrderBy(t => t.Id).Select(t => t.Id + ":" + t.State).ToListAsync();
        var runs = await db.TaskRunLogs.CountAsync();
        var actions = await db.FailureActions.CountAsync();
        var kept = await db.KeptMessages.CountAsync();
        return $"{tasks.Count} tasks, {runs} runs, {actions} actions, {kept} kept; {string.Join(",", tasks).GetHashCode(StringComparison.Ordinal)}";
    });

    private static string Cut(string answer) => answer.Length <= 3000 ? answer : answer[..3000] + $"… ({answer.Length} characters)";
}
