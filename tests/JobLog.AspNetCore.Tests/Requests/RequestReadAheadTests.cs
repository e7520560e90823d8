using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using JobLog.AspNetCore.Requests;
using JobLog.Http;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using NUnit.Framework;

namespace JobLog.AspNetCore.Tests.Requests;

/// <summary>Reading a body ahead for the ledger never lets a slow or lying client hold a request open.</summary>
public class RequestReadAheadTests
{
    private WebFixture _web = null!;
    private readonly Dictionary<string, TaskCompletionSource<TimeSpan>> _entered = [];
    private readonly Stopwatch _clock = new();

    [OneTimeSetUp]
    public async Task StartAsync() => _web = await WebFixture.StartAsync(
        app =>
        {
            app.UseJobLogRequests();
            app.MapPost("/upload/{name}", async (HttpRequest request, string name) =>
            {
                _entered[name].TrySetResult(_clock.Elapsed);
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
                _entered[name].TrySetResult(_clock.Elapsed);
                return Results.Text("0");
            });
            app.MapGet("/read/{name}", (string name) =>
            {
                _entered[name].TrySetResult(_clock.Elapsed);
                return Results.Text("0");
            });
        },
        server: Server.Kestrel);

    [OneTimeTearDown]
    public async Task StopAsync() => await _web.DisposeAsync();

    [TestCase("POST", "/upload/", 1000)]
    [TestCase("POST", "/ignore/", 0)]
    [TestCase("GET", "/read/", 0)]
    public async Task SlowClient_IsNotHeldBeforeTheEndpoint_AndTheEndpointStillReadsTheWholeBody(string method, string path, int expected)
    {
        var name = Guid.NewGuid().ToString("N");
        _entered[name] = new TaskCompletionSource<TimeSpan>(TaskCreationOptions.RunContinuationsAsynchronously);
        var uri = new Uri(_web.App.Urls.First());
        using var client = new TcpClient();
        await client.ConnectAsync(uri.Host, uri.Port);
        var stream = client.GetStream();
        _clock.Restart();

        // 10 of 1,000 declared bytes, the rest 4 s later (Kestrel's minimum data rate allows a 5 s grace).
        await stream.WriteAsync(Encoding.ASCII.GetBytes(
            $"{method} {path}{name} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\n" + new string('a', 10)));
        var entered = await Task.WhenAny(_entered[name].Task, Task.Delay(TimeSpan.FromSeconds(3)));
        await Task.Delay(TimeSpan.FromSeconds(4) - _clock.Elapsed is { Ticks: > 0 } rest ? rest : TimeSpan.Zero);
        await stream.WriteAsync(Encoding.ASCII.GetBytes(new string('b', 990)));
        var response = await ReadResponseAsync(stream);

        Assert.That(entered, Is.SameAs(_entered[name].Task), "the endpoint ran within 3 s although the body was not there");
        Assert.That(await _entered[name].Task, Is.LessThan(TimeSpan.FromSeconds(method == "GET" ? 0.4 : 2)));
        Assert.That(response, Does.StartWith("HTTP/1.1 200").And.EndWith("\r\n\r\n" + expected));
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

    private static async Task<string> ReadResponseAsync(NetworkStream stream)
    {
        var text = new StringBuilder();
        var buffer = new byte[4096];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
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
}
