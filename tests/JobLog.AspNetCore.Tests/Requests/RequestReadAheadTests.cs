using System.Net.Sockets;
using System.Text;
using JobLog.AspNetCore.Requests;
using JobLog.Http;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using NUnit.Framework;

namespace JobLog.AspNetCore.Tests.Requests;

/// <summary>Reading a body ahead for the ledger never lets a slow or lying client hold a request open.</summary>
public class RequestReadAheadTests
{
    /// <summary>The read-ahead's deadline: no other timer of the application waits this long, so its arming is told apart.</summary>
    private static readonly TimeSpan ReadAheadTimeout = TimeSpan.FromMinutes(7);

    private WebFixture _web = null!;
    private ArmedClock _clock = null!;
    private readonly Dictionary<string, TaskCompletionSource> _entered = [];

    [OneTimeSetUp]
    public async Task StartAsync()
    {
        _clock = new ArmedClock(ReadAheadTimeout);
        _web = await WebFixture.StartAsync(
            app =>
            {
                app.UseJobLogRequests(o => o.ReadAheadTimeout = ReadAheadTimeout);
                app.MapPost("/upload/{name}", async (HttpRequest request, string name) =>
                {
                    _entered[name].TrySetResult();
                    var total = 0L;
                    var buffer = new byte[4096];
                    int read;
                    while ((read = await request.Body.ReadAsync(buffer)) > 0)
                    {
                        total += read;
                    }

                    return Results.Text(total.ToString(System.Globalization.CultureInfo.InvariantCulture));
                });
                app.MapPost("/ignore/{name}", (string name) =>
                {
                    _entered[name].TrySetResult();
                    return Results.Text("0");
                });
                app.MapGet("/read/{name}", (string name) =>
                {
                    _entered[name].TrySetResult();
                    return Results.Text("0");
                });
            },
            services: s =>
            {
                // The read-ahead's deadline passes when the test says: a loaded machine delays nothing the test asserts.
                s.AddSingleton<TimeProvider>(_clock);
                // Kestrel's minimum body data rate (a 5-s grace on the wall clock) would end a request whose rest a loaded
                // machine sends late; the body's rest comes when the test has seen what it waits for.
                s.Configure<KestrelServerOptions>(k => k.Limits.MinRequestBodyDataRate = null);
            },
            server: Server.Kestrel);
    }

    [OneTimeTearDown]
    public async Task StopAsync() => await _web.DisposeAsync();

    /// <summary>
    /// A POST's read-ahead waits for the body's rest until its deadline, then lets the endpoint run without it; a GET's
    /// body is not read ahead at all. Either way the endpoint runs before the client sent the rest, and reads all of it.
    /// Order, not time: the clock is the test's, and the rest is sent only once the endpoint was entered.
    /// </summary>
    [TestCase("POST", "/upload/", 1000)]
    [TestCase("POST", "/ignore/", 0)]
    [TestCase("GET", "/read/", 0)]
    public async Task SlowClient_IsNotHeldBeforeTheEndpoint_AndTheEndpointStillReadsTheWholeBody(string method, string path, int expected)
    {
        var name = Guid.NewGuid().ToString("N");
        var entered = _entered[name] = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var armed = _clock.Arming();
        var uri = new Uri(_web.App.Urls.First());
        using var client = new TcpClient();
        await client.ConnectAsync(uri.Host, uri.Port);
        var stream = client.GetStream();

        // 10 of 1,000 declared bytes; the rest only once the endpoint ran.
        await stream.WriteAsync(Encoding.ASCII.GetBytes(
            $"{method} {path}{name} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\n" + new string('a', 10)));
        var response = ReadResponseAsync(stream);
        // States, not which wait woke first: the endpoint completes its signal before it answers, but a signal's
        // continuations run later.
        await AnyAsync(entered.Task, armed, response);
        if (method == "GET")
        {
            Assert.That((entered.Task.IsCompleted, armed.IsCompleted), Is.EqualTo((true, false)), "a GET's body is not read ahead: the endpoint ran, the clock unmoved");
        }
        else
        {
            Assert.That((armed.IsCompleted, entered.Task.IsCompleted), Is.EqualTo((true, false)), "a POST's read-ahead waits for the body's rest until its deadline");
            _clock.Advance(ReadAheadTimeout);
            await AnyAsync(entered.Task, response);
            Assert.That(entered.Task.IsCompleted, Is.True, "past its deadline the endpoint ran without the body's rest");
        }

        await stream.WriteAsync(Encoding.ASCII.GetBytes(new string('b', 990)));

        Assert.That(await response, Does.StartWith("HTTP/1.1 200").And.EndWith("\r\n\r\n" + expected));
    }

    [Test]
    public async Task ReadAhead_OfABodyShorterThanDeclared_AllocatesForTheBytesThatCame()
    {
        var capture = new RequestBodyCapture(new MemoryStream(Encoding.ASCII.GetBytes("ten bytes!")), new CaptureBuffer(64));
        // Warm up the async machinery so the measurement holds only the read-ahead.
        await new RequestBodyCapture(new MemoryStream([1]), new CaptureBuffer(1)).ReadAheadAsync(1, 1, TimeSpan.FromSeconds(5), TimeProvider.System, default);

        var before = GC.GetAllocatedBytesForCurrentThread();
        await capture.ReadAheadAsync(64 * 1024 * 1024, 64 * 1024 * 1024, TimeSpan.FromSeconds(5), TimeProvider.System, default);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.That(allocated, Is.LessThan(16 * 1024), "a 64 MB declared length allocates nothing like 64 MB");
        Assert.That(capture.Ended, Is.True);
        using var reader = new StreamReader(capture);
        Assert.That(await reader.ReadToEndAsync(), Is.EqualTo("ten bytes!"));
    }

    /// <summary>Returns once one of <paramref name="events"/> happened; a hang is bounded (120 s), not a speed asserted.</summary>
    private static async Task AnyAsync(params Task[] events)
    {
        var first = await Task.WhenAny(events.Append(Task.Delay(TimeSpan.FromSeconds(120))));
        if (Array.IndexOf(events, first) < 0)
        {
            throw new TimeoutException("The endpoint did not run, the read-ahead armed no deadline and no answer came within 120 s.");
        }
    }

    private static async Task<string> ReadResponseAsync(NetworkStream stream)
    {
        var text = new StringBuilder();
        var buffer = new byte[4096];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        while (true)
        {
            var n = await stream.ReadAsync(buffer, timeout.Token);
            if (n == 0)
            {
                break;
            }

            text.Append(Encoding.ASCII.GetString(buffer, 0, n));
            var all = text.ToString();
            var head = all.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            if (head > 0 && all.Contains("Content-Length: ", StringComparison.OrdinalIgnoreCase))
            {
                var lengthAt = all.IndexOf("Content-Length: ", StringComparison.OrdinalIgnoreCase) + 16;
                var length = int.Parse(all[lengthAt..all.IndexOf('\r', lengthAt)], System.Globalization.CultureInfo.InvariantCulture);
                if (all.Length >= head + 4 + length)
                {
                    return all;
                }
            }
        }

        return text.ToString();
    }

    /// <summary>The test's clock, which tells when a timer of <paramref name="watched"/> is armed (the read-ahead's deadline).</summary>
    private sealed class ArmedClock(TimeSpan watched) : FakeTimeProvider(new DateTimeOffset(2026, 3, 10, 12, 0, 0, TimeSpan.Zero))
    {
        private TaskCompletionSource _armed = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>Completes when the next timer of the watched duration is armed.</summary>
        public Task Arming()
        {
            _armed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            return _armed.Task;
        }

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            var timer = base.CreateTimer(callback, state, dueTime, period);
            if (dueTime == watched)
            {
                _armed.TrySetResult();
            }

            return timer;
        }
    }
}
