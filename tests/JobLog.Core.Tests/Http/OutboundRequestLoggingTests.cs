using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Runtime.CompilerServices;
using System.Text;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using NUnit.Framework;

namespace JobLog.Core.Tests.Http;

[TestFixture(LedgerProvider.Sqlite)]
[TestFixture(LedgerProvider.PostgreSql)]
public class OutboundRequestLoggingTests(LedgerProvider provider)
{
    private LedgerHost _host = null!;
    private StubHandler _partner = null!;
    private WarningCollector _warnings = null!;

    [SetUp]
    public async Task StartAsync()
    {
        _partner = new StubHandler();
        _warnings = new WarningCollector();
        _host = await LedgerHost.StartAsync(await Ledgers.CreateAsync(provider), services: s =>
        {
            s.AddSingleton<ILoggerProvider>(_warnings);
            s.AddHttpClient("psp").ConfigurePrimaryHttpMessageHandler(() => _partner).AddJobLogging(slug: "psp").AddJobLogging(slug: "twice");
            s.AddHttpClient("plain").ConfigurePrimaryHttpMessageHandler(() => _partner);
        });
    }

    [TearDown]
    public async Task StopAsync() => await _host.DisposeAsync();

    private HttpClient Client => _host.Services.GetRequiredService<IHttpClientFactory>().CreateClient("psp");

    [Test]
    public async Task Post_StoresTheRequestAndResponseMaskedAndBounded()
    {
        _partner.Respond = _ =>
        {
            var response = new HttpResponseMessage(HttpStatusCode.Created)
            {
                Content = new StringContent("""{"access_token":"tok-9","id":17}""", Encoding.UTF8, "application/json"),
            };
            response.Headers.Add("Set-Cookie", "sid=cookie-secret");
            return response;
        };
        using var request = new HttpRequestMessage(HttpMethod.Post, "https://psp.example:8443/v1/charges?token=q-secret&amount=10")
        {
            Content = JsonContent.Create(new { card = new { holder = new { password = "hunter2", name = "Ann" } } }),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "bearer-secret");

        using var response = await Client.SendAsync(request);

        Assert.That(await response.Content.ReadAsStringAsync(), Is.EqualTo("""{"access_token":"tok-9","id":17}"""), "the caller reads the real body");
        Assert.That(_partner.Bodies.Single(), Does.Contain("hunter2"), "the partner gets the real body");
        var log = await SingleOutputAsync();
        Assert.That(log.Host, Is.EqualTo("psp.example:8443"));
        Assert.That(log.Path, Is.EqualTo("/v1/charges"));
        Assert.That(log.IsSecure, Is.True);
        Assert.That(log.Method, Is.EqualTo("POST"));
        Assert.That(log.Slug, Is.EqualTo("psp"), "a second AddJobLogging on the same client adds nothing");
        Assert.That(log.Queries, Is.EqualTo("""{"token":"[Filtered]","amount":"10"}"""));
        Assert.That(log.RequestHeaders, Does.Not.Contain("bearer-secret").And.Contain("Authorization"));
        Assert.That(log.RequestBody, Is.EqualTo("""{"card":{"holder":{"password":"[Filtered]","name":"Ann"}}}"""));
        Assert.That(log.ResponseCode, Is.EqualTo(201));
        Assert.That(log.Status, Is.EqualTo(RequestLogStatus.Info));
        Assert.That(log.ResponseBody, Is.EqualTo("""{"access_token":"[Filtered]","id":17}"""));
        Assert.That(log.ResponseHeaders, Does.Not.Contain("cookie-secret").And.Contain("Set-Cookie"));
        Assert.That(log.ResponseTimestamp, Is.Not.Null);
        Assert.That(log.InputRequestId, Is.Null);
        Assert.That(log.RelatedObjects, Is.Empty);
    }

    [Test]
    public async Task Request_InsideAmbientContext_IsLinkedToTheInputRequestAndRelatedToTheRunAndObjects()
    {
        var inputId = Guid.NewGuid();
        var runId = Guid.NewGuid();
        using (JobLogScope.Push(new AmbientFrame(AmbientKind.InputRequest, inputId, null)))
        using (JobLogScope.Push(new AmbientFrame(AmbientKind.TaskRun, runId, JobLogScope.Current)))
        using (JobLogScope.Relate(new Order(42)))
        using (JobLogScope.Relate("Invoice", "INV-7"))
        {
            (await Client.GetAsync("http://psp.example/status")).Dispose();
        }

        (await Client.GetAsync("http://psp.example/outside")).Dispose();

        var logs = await OutputsAsync(2);
        var inside = logs.Single(l => l.Path == "/status");
        var outside = logs.Single(l => l.Path == "/outside");
        Assert.That(inside.InputRequestId, Is.EqualTo(inputId));
        Assert.That(inside.RelatedObjects.Select(r => (r.TaskRunLogId, r.CommandLogId, r.ContentType, r.ObjectId)), Is.EquivalentTo(new (Guid?, Guid?, string?, string?)[]
        {
            (runId, null, null, null),
            (null, null, "Order", "42"),
            (null, null, "Invoice", "INV-7"),
        }));
        Assert.That(outside.InputRequestId, Is.Null);
        Assert.That(outside.RelatedObjects, Is.Empty);
    }

    [Test]
    public async Task Request_InsideACommand_IsRelatedToTheCommand()
    {
        var commands = _host.Services.GetRequiredService<CommandLogger>();

        await commands.RunAsync("sync-partner", [], async ct =>
        {
            (await Client.GetAsync("http://psp.example/sync", ct)).Dispose();
            return 0;
        });

        var log = await SingleOutputAsync();
        var command = await _host.QueryAsync(db => db.CommandLogs.AsNoTracking().SingleAsync());
        Assert.That(log.RelatedObjects.Single().CommandLogId, Is.EqualTo(command.Id));
    }

    [Test]
    public async Task ConnectionFailure_IsRecordedAsErrorAndTheSameExceptionReachesTheCaller()
    {
        var failure = new HttpRequestException("Connection refused (psp.example:443)", new System.Net.Sockets.SocketException(111));
        _partner.Respond = _ => throw failure;

        var caught = Assert.ThrowsAsync<HttpRequestException>(() => Client.GetAsync("https://psp.example/ping"));

        Assert.That(caught, Is.SameAs(failure));
        var log = await SingleOutputAsync();
        Assert.That(log.Status, Is.EqualTo(RequestLogStatus.Error));
        Assert.That(log.ExceptionName, Is.EqualTo("System.Net.Http.HttpRequestException"));
        Assert.That(log.ErrorDescription, Does.Contain("Connection refused"));
        Assert.That(log.ResponseCode, Is.Null);
    }

    [Test]
    public async Task Timeout_IsRecordedAsHttpClientReportsIt_NamingTheTimeoutAndItsLength_AndTheCallerStillGetsHttpClientsTimeout()
    {
        _partner.RespondAsync = async (_, ct) =>
        {
            await Task.Delay(Timeout.Infinite, ct);
            throw new InvalidOperationException("unreachable");
        };
        var client = Client;
        client.Timeout = TimeSpan.FromMilliseconds(200);

        var caught = Assert.ThrowsAsync<TaskCanceledException>(() => client.GetAsync("https://psp.example/slow"));

        Assert.That(caught!.InnerException, Is.InstanceOf<TimeoutException>(), "HttpClient's own timeout exception, untouched by the handler");
        Assert.That(caught.Message, Is.EqualTo("The request was canceled due to the configured HttpClient.Timeout of 0.2 seconds elapsing."));
        var log = await SingleOutputAsync();
        Assert.That(log.Status, Is.EqualTo(RequestLogStatus.Error));
        Assert.That(log.ExceptionName, Is.EqualTo("System.Threading.Tasks.TaskCanceledException"));
        Assert.That(log.ErrorDescription, Does.StartWith("System.Threading.Tasks.TaskCanceledException: " + caught.Message));
        Assert.That(log.ErrorDescription, Does.Contain("---> System.TimeoutException"), "the same shape as the caller's exception");
    }

    [Test]
    public async Task Timeout_WhileHttpClientBuffersTheBody_IsRecordedAsATimeout_WithTheBytesThatCame()
    {
        _partner.Respond = _ => new HttpResponseMessage(HttpStatusCode.OK)
        {
            Content = new StreamContent(new StallingStream("first rows\n"u8.ToArray())) { Headers = { ContentType = new MediaTypeHeaderValue("text/plain") } },
        };
        var client = Client;
        client.Timeout = TimeSpan.FromMilliseconds(300);

        var caught = Assert.ThrowsAsync<TaskCanceledException>(() => client.GetAsync("https://psp.example/stalls"));

        Assert.That(caught!.InnerException, Is.InstanceOf<TimeoutException>());
        var log = await SingleOutputAsync();
        Assert.That(log.ResponseCode, Is.EqualTo(200));
        Assert.That(log.Status, Is.EqualTo(RequestLogStatus.Error));
        Assert.That(log.ErrorDescription, Does.StartWith("System.Threading.Tasks.TaskCanceledException: " + caught.Message));
        Assert.That(log.ResponseBody, Does.StartWith("first rows"));
    }

    [Test]
    public async Task CallersCancellation_IsRecordedAsCanceled_NotAsATimeout()
    {
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _partner.RespondAsync = async (_, ct) =>
        {
            started.TrySetResult();
            await Task.Delay(Timeout.Infinite, ct);
            throw new InvalidOperationException("unreachable");
        };
        var client = Client;
        client.Timeout = TimeSpan.FromMinutes(10);
        using var cancel = new CancellationTokenSource();

        var call = client.GetAsync("https://psp.example/slow", cancel.Token);
        await started.Task.WaitAsync(TimeSpan.FromSeconds(60));
        await cancel.CancelAsync();
        var caught = Assert.ThrowsAsync<TaskCanceledException>(() => call);

        Assert.That(caught!.InnerException, Is.Not.InstanceOf<TimeoutException>(), "HttpClient says cancelled");
        var log = await SingleOutputAsync();
        Assert.That(log.Status, Is.EqualTo(RequestLogStatus.Error));
        Assert.That(log.ExceptionName, Is.EqualTo("System.Threading.Tasks.TaskCanceledException"));
        Assert.That(log.ErrorDescription, Does.StartWith("System.Threading.Tasks.TaskCanceledException: " + caught.Message), "what the caller got");
        Assert.That(log.ErrorDescription, Does.Not.Contain("HttpClient.Timeout").And.Not.Contain("TimeoutException"));
    }

    [Test]
    public async Task CallersCancellation_OfAStreamedBodyReadPastTheClientsTimeout_IsNotRecordedAsATimeout()
    {
        _partner.Respond = _ => new HttpResponseMessage(HttpStatusCode.OK)
        {
            Content = new StreamContent(new StallingStream("first rows\n"u8.ToArray())) { Headers = { ContentType = new MediaTypeHeaderValue("text/plain") } },
        };
        var client = Client;
        client.Timeout = TimeSpan.FromMilliseconds(100);
        var sent = System.Diagnostics.Stopwatch.StartNew();

        using var response = await client.GetAsync("https://psp.example/export", HttpCompletionOption.ResponseHeadersRead);
        await using var body = await response.Content.ReadAsStreamAsync();
        Assert.That(await body.ReadAsync(new byte[100]), Is.EqualTo(11));

        // HttpClient.Timeout no longer applies to a body the caller streams: let it pass, so that the time alone could
        // not tell the caller's cancellation from a timeout.
        while (sent.Elapsed < TimeSpan.FromMilliseconds(500))
        {
            await Task.Delay(50);
        }

        using var cancel = new CancellationTokenSource();
        var read = body.ReadAsync(new byte[100], cancel.Token).AsTask();
        await cancel.CancelAsync();
        Assert.CatchAsync<OperationCanceledException>(() => read);

        var log = await SingleOutputAsync();
        Assert.That(log.Status, Is.EqualTo(RequestLogStatus.Error));
        Assert.That(log.ErrorDescription, Does.Not.Contain("HttpClient.Timeout"));
        Assert.That(log.ResponseBody, Does.StartWith("first rows"));
    }

    [Test]
    public async Task StreamedResponse_IsNotReadAheadAndIsCapturedAsTheCallerReadsIt()
    {
        var body = new TrackingStream(Encoding.UTF8.GetBytes(string.Concat(Enumerable.Range(0, 20_000).Select(i => $"row {i}\n"))));
        _partner.Respond = _ => new HttpResponseMessage(HttpStatusCode.OK)
        {
            Content = new StreamContent(body) { Headers = { ContentType = new MediaTypeHeaderValue("text/plain") } },
        };

        using var response = await Client.GetAsync("http://psp.example/export", HttpCompletionOption.ResponseHeadersRead);
        var readBeforeTheCaller = body.BytesRead;
        await _host.FlushAsync();
        var recordedBeforeTheCaller = await _host.QueryAsync(db => db.OutputRequestLogs.CountAsync());
        var text = await response.Content.ReadAsStringAsync();

        Assert.That(readBeforeTheCaller, Is.Zero, "the handler does not read the body ahead of the caller");
        Assert.That(recordedBeforeTheCaller, Is.Zero, "the record waits for the body");
        Assert.That(text, Does.EndWith("row 19999\n"));
        var log = await SingleOutputAsync();
        Assert.That(log.ResponseBody, Has.Length.EqualTo(10_000));
        Assert.That(log.ResponseBody, Does.StartWith("row 0\n").And.EndWith("…"));
    }

    [Test]
    public async Task StreamedResponse_AbandonedHalfRead_IsRecordedWhenDisposed()
    {
        _partner.Respond = _ => new HttpResponseMessage(HttpStatusCode.OK)
        {
            Content = new StreamContent(new TrackingStream(new byte[1_000_000])) { Headers = { ContentType = new MediaTypeHeaderValue("text/csv") } },
        };

        using (var response = await Client.GetAsync("http://psp.example/big", HttpCompletionOption.ResponseHeadersRead))
        {
            var stream = await response.Content.ReadAsStreamAsync();
            _ = await stream.ReadAsync(new byte[100]);
        }

        var log = await SingleOutputAsync();
        Assert.That(log.Status, Is.EqualTo(RequestLogStatus.Info));
        Assert.That(log.ResponseBody, Does.StartWith("[binary body"), "100 NUL bytes read, then abandoned: marked, never mangled");
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task Response_LongerThanTheClientBuffers_IsRecordedAsTheErrorTheCallerGets(bool synchronous)
    {
        // HttpClient buffers a response (GetAsync, GetStringAsync) up to MaxResponseContentBufferSize and throws past
        // it: the caller never gets the body, so the ledger must not say the call went well.
        var body = new TrackingStream(Encoding.UTF8.GetBytes(new string('a', 300_000)));
        _partner.Respond = _ => new HttpResponseMessage(HttpStatusCode.OK)
        {
            Content = new StreamContent(body) { Headers = { ContentType = new MediaTypeHeaderValue("text/plain") } },
        };
        var client = Client;
        client.MaxResponseContentBufferSize = 100_000;

        var thrown = synchronous
            ? Assert.Throws<HttpRequestException>(() => client.Send(new HttpRequestMessage(HttpMethod.Get, "http://psp.example/export")))
            : Assert.ThrowsAsync<HttpRequestException>(() => client.GetAsync("http://psp.example/export"));

        var log = await SingleOutputAsync();
        Assert.That(log.ResponseCode, Is.EqualTo(200));
        Assert.That(log.Status, Is.EqualTo(RequestLogStatus.Error));
        Assert.That(log.ExceptionName, Is.EqualTo(typeof(HttpRequestException).FullName));
        Assert.That(log.ErrorDescription, Does.Contain(thrown!.Message));
        Assert.That(log.ResponseBody, Has.Length.EqualTo(10_000).And.EndWith("…"), "what was read before the client gave up, bounded");
    }

    [Test]
    public async Task StreamedResponse_NeitherReadNorDisposed_IsRecordedWhenCollected_AndTheLeakIsLoggedOnce()
    {
        // A caller that checks the status of a ResponseHeadersRead response and drops it (no using): a common leak.
        // Its record waited for a read or a dispose that never comes, so the call was never recorded.
        _partner.Respond = _ => new HttpResponseMessage(HttpStatusCode.Accepted)
        {
            Content = new StreamContent(new TrackingStream(Encoding.UTF8.GetBytes("queued"))) { Headers = { ContentType = new MediaTypeHeaderValue("text/plain") } },
        };

        await DropUnreadAsync("http://psp.example/queue/1");
        await DropUnreadAsync("http://psp.example/queue/2");
        for (var i = 0; i < 3; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }

        var logs = await OutputsAsync(2);
        Assert.That(logs.Select(l => l.Path), Is.EquivalentTo(new[] { "/queue/1", "/queue/2" }));
        Assert.That(logs.Select(l => l.ResponseCode), Is.All.EqualTo(202));
        Assert.That(logs.Select(l => l.ResponseBody), Is.All.EqualTo("[body not recorded]"), "nothing was read");
        Assert.That(logs.Select(l => l.ResponseTimestamp), Is.All.Not.Null);
        Assert.That(_warnings.Count(1039), Is.EqualTo(1), "the leak is logged once a process");
        Assert.That(_host.Services.GetRequiredService<JobLog.Http.OutboundRequestRecorder>().OpenCount, Is.Zero);
    }

    [Test]
    public async Task StreamedResponse_StillOpenWhenTheHostStops_IsRecordedWithWhatWasRead()
    {
        _partner.Respond = _ => new HttpResponseMessage(HttpStatusCode.OK)
        {
            Content = new StreamContent(new TrackingStream(Encoding.UTF8.GetBytes("event: a\nevent: b\n"))) { Headers = { ContentType = new MediaTypeHeaderValue("text/event-stream") } },
        };
        using var response = await Client.GetAsync("http://psp.example/events", HttpCompletionOption.ResponseHeadersRead);
        var stream = await response.Content.ReadAsStreamAsync();
        var read = await stream.ReadAsync(new byte[9]);

        await _host.Host.StopAsync();

        var log = (await _host.QueryAsync(db => db.OutputRequestLogs.AsNoTracking().ToListAsync())).Single();
        Assert.That(read, Is.EqualTo(9));
        Assert.That(log.Path, Is.EqualTo("/events"));
        Assert.That(log.ResponseBody, Is.EqualTo("event: a\n…"), "what the caller had read when the host stopped");
        Assert.That(_warnings.Count(1039), Is.Zero, "an open response at shutdown is not a leak");
        GC.KeepAlive(stream);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private async Task DropUnreadAsync(string url)
    {
        var response = await Client.GetAsync(url, HttpCompletionOption.ResponseHeadersRead);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
    }

    [Test]
    public async Task BinaryResponse_StoresNoBodyAndIsRecordedWithoutBeingRead()
    {
        var body = new TrackingStream(new byte[5000]);
        _partner.Respond = _ => new HttpResponseMessage(HttpStatusCode.OK)
        {
            Content = new StreamContent(body) { Headers = { ContentType = new MediaTypeHeaderValue("application/pdf") } },
        };

        using var response = await Client.GetAsync("http://psp.example/invoice.pdf", HttpCompletionOption.ResponseHeadersRead);

        var log = await SingleOutputAsync();
        Assert.That(log.ResponseBody, Is.Null);
        Assert.That(log.ResponseCode, Is.EqualTo(200));
        Assert.That(body.BytesRead, Is.Zero);
    }

    [Test]
    public async Task StreamRequestBody_IsNotConsumedByTheHandlerAndIsMarkedNotRecorded()
    {
        var upload = new TrackingStream(Encoding.UTF8.GetBytes("password=streamed-secret"));
        var content = new StreamContent(upload);
        content.Headers.ContentLength = 24;

        (await Client.PostAsync("http://psp.example/upload", content)).Dispose();

        Assert.That(_partner.Bodies.Single(), Is.EqualTo("password=streamed-secret"), "the partner got the whole stream");
        var log = await SingleOutputAsync();
        Assert.That(log.RequestBody, Is.EqualTo("[body not recorded: 24 bytes]"));
    }

    [Test]
    public async Task RequestBody_ThatFailsToCapture_DoesNotFailTheRequest()
    {
        var value = new FlakyValue();

        using var response = await Client.PostAsync("http://psp.example/flaky", JsonContent.Create(value));

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(_partner.Bodies.Single(), Is.EqualTo("""{"name":"second"}"""));
        var log = await SingleOutputAsync();
        Assert.That(log.RequestBody, Is.EqualTo("[body not recorded]"));
    }

    [Test]
    public async Task SynchronousSend_IsRecordedToo()
    {
        using var response = Client.Send(new HttpRequestMessage(HttpMethod.Put, "http://psp.example/sync") { Content = new StringContent("apikey=k1&x=1") });

        var log = await SingleOutputAsync();
        Assert.That(log.Method, Is.EqualTo("PUT"));
        Assert.That(log.RequestBody, Is.EqualTo("apikey=[Filtered]&x=1"));
    }

    [Test]
    public async Task ErrorResponse_WhoseBodyBreaksOff_ReachesTheCallerAsTheResponse_NotAsAnException()
    {
        // A 503 whose connection resets in its body: a caller reading only the headers (ResponseHeadersRead, a status
        // check) gets the 503 without JobLog; reading the short error body at once for the record must not change that.
        _partner.Respond = _ =>
        {
            var content = new StreamContent(new TrackingStream(Encoding.UTF8.GetBytes("busy, "), breaks: true));
            content.Headers.ContentType = new MediaTypeHeaderValue("text/plain");
            content.Headers.ContentLength = 40;
            return new HttpResponseMessage(HttpStatusCode.ServiceUnavailable) { Content = content };
        };

        using (var response = await Client.GetAsync("http://psp.example/busy", HttpCompletionOption.ResponseHeadersRead))
        {
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.ServiceUnavailable));
        }

        var log = await SingleOutputAsync();
        Assert.That(log.ResponseCode, Is.EqualTo(503));
    }

    [Test]
    public async Task ClientWithoutAddJobLogging_IsNotRecorded()
    {
        var plain = _host.Services.GetRequiredService<IHttpClientFactory>().CreateClient("plain");

        (await plain.GetAsync("http://psp.example/plain")).Dispose();
        await _host.FlushAsync();

        Assert.That(await _host.QueryAsync(db => db.OutputRequestLogs.CountAsync()), Is.Zero);
        Assert.That(_partner.Bodies, Has.Count.EqualTo(1));
    }

    private async Task<OutputRequestLog> SingleOutputAsync() => (await OutputsAsync(1)).Single();

    private async Task<List<OutputRequestLog>> OutputsAsync(int count)
    {
        List<OutputRequestLog> logs = [];
        await LedgerHost.EventuallyAsync(
            async () =>
            {
                await _host.FlushAsync();
                logs = await _host.QueryAsync(db => db.OutputRequestLogs.AsNoTracking().Include(o => o.RelatedObjects).ToListAsync());
                return logs.Count >= count;
            },
            because: $"{count} output request logs");
        Assert.That(logs, Has.Count.EqualTo(count));
        return logs;
    }

    private sealed record Order(int Id);

    /// <summary>Throws the first time it is serialized (the capture), serializes the second time (the real send).</summary>
    private sealed class FlakyValue
    {
        private int _reads;

        public string Name => Interlocked.Increment(ref _reads) == 1 ? throw new InvalidOperationException("first read fails") : "second";
    }

    private sealed class StubHandler : HttpMessageHandler
    {
        public Func<HttpRequestMessage, HttpResponseMessage> Respond { get; set; } = _ => new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent("ok") };

        public Func<HttpRequestMessage, CancellationToken, Task<HttpResponseMessage>>? RespondAsync { get; set; }

        public List<string?> Bodies { get; } = [];

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Bodies.Add(request.Content is null ? null : await request.Content.ReadAsStringAsync(cancellationToken));
            return RespondAsync is not null ? await RespondAsync(request, cancellationToken) : Respond(request);
        }

        protected override HttpResponseMessage Send(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Bodies.Add(request.Content is null ? null : new StreamReader(request.Content.ReadAsStream(cancellationToken)).ReadToEnd());
            return Respond(request);
        }
    }

    /// <summary>A non-seekable stream that can only be read: what the test streams below have in common.</summary>
    private abstract class ReadOnlyStream : Stream
    {
        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    /// <summary>A body that sends its first bytes, then nothing until the reader's token is cancelled.</summary>
    private sealed class StallingStream(byte[] first) : ReadOnlyStream
    {
        private bool _sent;

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (!_sent)
            {
                _sent = true;
                first.CopyTo(buffer);
                return first.Length;
            }

            await Task.Delay(Timeout.Infinite, cancellationToken);
            return 0;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException("async only");
    }

    /// <summary>A non-seekable stream that counts what was read from it; with <paramref name="breaks"/>, past its bytes it fails as a connection reset in a body does.</summary>
    private sealed class TrackingStream(byte[] data, bool breaks = false) : ReadOnlyStream
    {
        private int _position;

        public int BytesRead => _position;

        public override int Read(byte[] buffer, int offset, int count)
        {
            if (breaks && _position == data.Length)
            {
                throw new IOException("The response ended prematurely.");
            }

            var n = Math.Min(count, data.Length - _position);
            Array.Copy(data, _position, buffer, offset, n);
            _position += n;
            return n;
        }
    }
}
