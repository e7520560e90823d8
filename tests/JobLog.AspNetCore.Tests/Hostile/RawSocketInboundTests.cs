using System.Net;
using System.Net.Sockets;
using System.Text;
using JobLog.AspNetCore.Tests.Requests;
using JobLog.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.EntityFrameworkCore;
using NUnit.Framework;

namespace JobLog.AspNetCore.Tests.Hostile;

/// <summary>
/// The request-logging middleware against a raw socket (no HttpClient to tidy the bytes up): a request line and headers at
/// Kestrel's limits, invalid percent-encoding in the path and the query, a body declared longer than sent, a client that
/// leaves mid-body, pipelined requests, a body the application never reads. Kestrel with <c>UseJobLogRequests()</c>
/// answers each exactly as the same application without it (the same status lines, in the same order), never a 500, and
/// every request that reached the application has a finished, bounded record.
/// </summary>
public class RawSocketInboundTests
{
    // A client that leaves mid-body leaves once the endpoint has its request: a reset the server reads before the request
    // would discard it unread, and nothing would have reached either application.
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, TaskCompletionSource> s_entered = new();
    private WebFixture _logged = null!;
    private WebFixture _plain = null!;

    [OneTimeSetUp]
    public async Task StartAsync()
    {
        _logged = await WebFixture.StartAsync(app => Pipeline(app, logged: true), server: Server.Kestrel);
        _plain = await WebFixture.StartAsync(app => Pipeline(app, logged: false), server: Server.Kestrel);
    }

    [OneTimeTearDown]
    public async Task StopAsync()
    {
        await _logged.DisposeAsync();
        await _plain.DisposeAsync();
    }

    private static void Pipeline(WebApplication app, bool logged)
    {
        if (logged)
        {
            app.UseJobLogRequests();
        }

        app.MapGet("/echo/{*rest}", (HttpRequest request) => Results.Text($"path {request.Path.Value?.Length} query {request.QueryString.Value?.Length}"));
        app.MapPost("/read", async (HttpRequest request) =>
        {
            if (request.Query["leaving"].FirstOrDefault() is { } leaving)
            {
                s_entered.GetOrAdd(leaving, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
            }

            var total = 0L;
            var buffer = new byte[8192];
            int read;
            while ((read = await request.Body.ReadAsync(buffer)) > 0)
            {
                total += read;
            }

            return Results.Text($"read {total}");
        });
        app.MapPost("/ignore", () => Results.Text("not read"));
    }

    /// <summary>
    /// Sends the bytes while reading (a server that answers before it has read everything is heard), then, unless it leaves
    /// early, reads until the server closes (each case's last request says <c>Connection: close</c>), and returns the status
    /// lines it got, and "(reset)" when the connection was reset.
    /// </summary>
    private static async Task<string> SendAsync(WebFixture web, byte[] request, bool leave, bool halfClose)
    {
        var port = new Uri(web.App.Urls.First()).Port;
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, port);
        var stream = client.GetStream();
        if (leave)
        {
            var leaving = s_entered.GetOrAdd(Encoding.Latin1.GetString(request).Split("leaving=")[1].Split(' ')[0], _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
            await stream.WriteAsync(request);
            await leaving.Task.WaitAsync(TimeSpan.FromSeconds(60));
            client.Client.LingerState = new LingerOption(true, 0);
            client.Close();
            return "(left)";
        }

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var answer = new MemoryStream();
        var reset = false;
        var reading = Task.Run(async () =>
        {
            try
            {
                await stream.CopyToAsync(answer, timeout.Token);
            }
            catch (IOException)
            {
                // Kestrel closing a connection with bytes it did not read resets it: what came before counts.
                reset = true;
            }
        });
        try
        {
            await stream.WriteAsync(request, timeout.Token);
            if (halfClose)
            {
                // Kestrel takes a client's FIN for its leaving: a request still running then is aborted, its answer unsent.
                client.Client.Shutdown(SocketShutdown.Send);
            }
        }
        catch (IOException)
        {
            // The server answered and closed before it read everything.
        }

        await reading;
        var text = Encoding.Latin1.GetString(answer.ToArray());
        return string.Join(" | ", text.Split("\r\n").Where(l => l.StartsWith("HTTP/1.1 ", StringComparison.Ordinal))) + (reset ? " (reset)" : "");
    }

    private static byte[] Ascii(string text) => Encoding.Latin1.GetBytes(text);

    public static IEnumerable<TestCaseData> Cases()
    {
        var m = "MARKER";
        yield return new TestCaseData($"GET /echo/a?{m}=1&q={new string('q', 60 * 1024)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", false, true, false)
            .SetName("ARequestLineNearKestrelsLimit");
        yield return new TestCaseData($"GET /echo/a?{m}=1&q={new string('q', 70 * 1024)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", false, false, false)
            .SetName("ARequestLinePastKestrelsLimit");
        yield return new TestCaseData(
            $"GET /echo/a?{m}=1 HTTP/1.1\r\nHost: x\r\n{string.Concat(Enumerable.Range(0, 95).Select(i => $"X-H{i}: {new string('v', 2600)}\r\n"))}Connection: close\r\n\r\n", false, true, false)
            .SetName("NinetyFiveHeadersOf2600BytesWithinKestrelsLimits");
        yield return new TestCaseData($"GET /echo/%zz/%C0%AF/%ED%A0%80/%2e%2e/%2F?{m}=1&a=%zz&b=%C0%AF&c=%ED%A0%80&%=%&d=%00&e=%FF%FE HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", false, true, false)
            .SetName("InvalidPercentEncodingInThePathAndQuery");
        yield return new TestCaseData($"GET /echo/a%00b?{m}=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", false, false, false)
            .SetName("AnEncodedNulInThePath");
        yield return new TestCaseData($"GET /echo/a?{m}=1&x=\u00ff\u00fe HTTP/1.1\r\nHost: x\r\nX-Bad: a\u00ff\u00c3(b\r\nConnection: close\r\n\r\n", false, false, false)
            .SetName("RawNonAsciiBytesInTheQueryAndAHeader");
        yield return new TestCaseData($"POST /read?{m}=1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n{{\"password\":\"hunter2\"", false, true, true)
            .SetName("ABodyDeclaredLongerThanSent_ThenHalfClosed");
        yield return new TestCaseData($"POST /read?{m}=1&leaving=LEAVING HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n{new string('b', 5000)}", true, true, false)
            .SetName("AClientThatLeavesMidBody");
        yield return new TestCaseData($"POST /ignore?{m}=1 HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 1000000\r\nConnection: close\r\n\r\n{new string('c', 1_000_000)}", false, true, false)
            .SetName("ABodyTheApplicationNeverReads_ConnectionClose");
        yield return new TestCaseData($"POST /ignore?{m}=1 HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 1000000\r\n\r\n{new string('c', 1_000_000)}GET /echo/after?{m}=2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", false, true, false)
            .SetName("ABodyTheApplicationNeverReads_KeepAlive_ThenAnotherRequest");
        yield return new TestCaseData(
            $"GET /echo/1?{m}=1 HTTP/1.1\r\nHost: x\r\n\r\nPOST /read?{m}=2 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloPOST /ignore?{m}=3 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /echo/4?{m}=4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", false, true, false)
            .SetName("FourPipelinedRequests");
    }

    [TestCaseSource(nameof(Cases))]
    public async Task RawRequest_IsAnsweredAsWithoutJobLog_AndRecordedFinishedAndBounded(string raw, bool leave, bool reachesTheApplication, bool halfClose)
    {
        var marker = "m" + Guid.NewGuid().ToString("N");
        var with = await SendAsync(_logged, Ascii(raw.Replace("MARKER", marker, StringComparison.Ordinal).Replace("LEAVING", marker + "a", StringComparison.Ordinal)), leave, halfClose);
        var without = await SendAsync(_plain, Ascii(raw.Replace("MARKER", marker, StringComparison.Ordinal).Replace("LEAVING", marker + "b", StringComparison.Ordinal)), leave, halfClose);
        TestContext.Out.WriteLine($"without JobLog: {without}; with: {with}");

        // Kestrel resets a connection it closes with bytes unread (a body the application did not read, then
        // Connection: close): the reset may discard the answer before the client reads it, with or without JobLog.
        static string Heard(string answer) => answer.Replace(" (reset)", "", StringComparison.Ordinal);
        // A half-close races the answer the same way (Kestrel takes the FIN for the client leaving).
        if (Heard(with).Length > 0 && Heard(without).Length > 0 || !(halfClose || (with + without).Contains("(reset)", StringComparison.Ordinal)))
        {
            Assert.That(Heard(with), Is.EqualTo(Heard(without)), "answered as without JobLog");
        }

        Assert.That(with, Does.Not.Contain(" 500 "), "never a 500");
        if (!reachesTheApplication)
        {
            return;
        }

        var expected = Math.Max(1, Heard(with).Split(" | ").Count(l => l.Length > 0));
        List<InputRequestLog> rows = [];
        await LedgerHost.EventuallyAsync(
            async () =>
            {
                await _logged.FlushAsync();
                rows = await _logged.QueryAsync(db => db.InputRequestLogs.AsNoTracking().Where(r => r.Queries!.Contains(marker)).ToListAsync());
                return rows.Count >= expected && rows.All(r => r.Status != RequestLogStatus.Incomplete);
            },
            because: $"{expected} finished records");
        foreach (var row in rows.OrderBy(r => r.RequestTimestamp))
        {
            TestContext.Out.WriteLine($"{row.Method} {row.Path[..Math.Min(80, row.Path.Length)]} {row.ResponseCode} {row.Status} query {row.Queries?.Length} headers {row.RequestHeaders?.Length} body {row.RequestBody?.Length}: {row.RequestBody?[..Math.Min(60, row.RequestBody.Length)]} {row.ExceptionName}");
        }

        Assert.Multiple(() =>
        {
            foreach (var row in rows)
            {
                Assert.That(row.Path.Length, Is.LessThanOrEqualTo(2000), "the path is bounded");
                Assert.That(row.Queries?.Length ?? 0, Is.LessThanOrEqualTo(10_100), "the query is bounded");
                Assert.That(row.RequestHeaders?.Length ?? 0, Is.LessThanOrEqualTo(10_100), "the headers are bounded");
                Assert.That(row.RequestBody?.Length ?? 0, Is.LessThanOrEqualTo(10_100), "the body is bounded");
                Assert.That((row.RequestBody ?? "").Contains("hunter2", StringComparison.Ordinal), Is.False, "a password in a cut JSON body is masked");
                Assert.That(string.Concat(row.Path, row.Queries, row.RequestHeaders).Contains('\0', StringComparison.Ordinal), Is.False, "no NUL is stored");
            }
        });
    }

    /// <summary>
    /// A body declared longer than sent, then the client gone (half-closed, or reset mid-body): the record says what
    /// came (the text read, marked cut) or that the body was cut short and how much of it was read, never the declared
    /// length as the body's size.
    /// </summary>
    [TestCase("{\"password\":\"hunter2\"", "application/json", false, true, TestName = "ABodyDeclaredLongerThanSent_ThenHalfClosed_IsRecordedAsCutShort")]
    [TestCase("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "text/plain", true, false, TestName = "AClientThatLeavesMidBody_IsRecordedAsCutShort")]
    public async Task ABodyCutShort_IsRecordedWithWhatCame_NotAsTheDeclaredLength(string sent, string contentType, bool leave, bool halfClose)
    {
        var marker = "m" + Guid.NewGuid().ToString("N");
        var leaving = leave ? $"&leaving={marker}a" : "";
        var connection = leave ? "" : "Connection: close\r\n";
        var raw = $"POST /read?{marker}=1{leaving} HTTP/1.1\r\nHost: x\r\nContent-Type: {contentType}\r\nContent-Length: 100000\r\n{connection}\r\n{sent}";
        await SendAsync(_logged, Ascii(raw), leave, halfClose);

        InputRequestLog? row = null;
        await LedgerHost.EventuallyAsync(
            async () =>
            {
                await _logged.FlushAsync();
                row = await _logged.QueryAsync(db => db.InputRequestLogs.AsNoTracking().Where(r => r.Queries!.Contains(marker)).SingleOrDefaultAsync());
                return row is { Status: not RequestLogStatus.Incomplete };
            },
            because: "the request's record is finished");
        TestContext.Out.WriteLine($"{row!.ResponseCode} {row.Status} {row.ExceptionName} body: {row.RequestBody}");

        Assert.That(row.RequestBody, Does.Not.Match(@": 100000 bytes\]"), "the declared length is not the body's size");
        Assert.That(row.RequestBody, Does.Not.Contain("hunter2"));
        var cut = System.Text.RegularExpressions.Regex.Match(row.RequestBody ?? "", @"\A\[body cut short: ([0-9]+) of 100000 bytes\]\z");
        if (cut.Success)
        {
            Assert.That(int.Parse(cut.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), Is.LessThanOrEqualTo(sent.Length), "at most what was sent was read");
        }
        else
        {
            Assert.That(row.RequestBody, Does.StartWith(sent[..2]).And.EndWith("…"), "the text that came, marked cut");
        }
    }
}
