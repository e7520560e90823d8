using System.IO.Compression;
using System.Net;
using System.Net.Http.Headers;
using System.Net.WebSockets;
using System.Runtime.CompilerServices;
using System.Text;
using JobLog.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using NUnit.Framework;

namespace JobLog.AspNetCore.Tests.Requests;

/// <summary>JobLog's middleware among the middlewares real applications use, on Kestrel.</summary>
public class RequestPipelineTests
{
    private static readonly string OrdersJson =
        "{\"orders\":[" + string.Join(",", Enumerable.Range(0, 300).Select(i => $"{{\"id\":{i},\"customer\":\"customer {i}\"}}")) + "]}";

    [Test]
    public async Task ServerSentEvents_FromTypedResults_AreCapturedBoundedAndStreamWhole()
    {
        // TypedResults.ServerSentEvents sends "Content-Encoding: identity": not compressed.
        const int events = 5_000;
        await using var web = await WebFixture.StartAsync(
            app =>
            {
                app.UseJobLogRequests();
                app.MapGet("/ticks", (CancellationToken ct) => TypedResults.ServerSentEvents(Ticks(events, ct), "tick"));
            },
            server: Server.Kestrel);

        using var response = await web.Client.GetAsync("/ticks", HttpCompletionOption.ResponseHeadersRead);
        var text = await response.Content.ReadAsStringAsync();

        Assert.That(text, Does.Contain($"data: tick {events - 1}\n"), "the client got every event");
        var log = await web.CompletedInputAsync("/ticks");
        Assert.That(log.ResponseBody, Does.StartWith("event: tick\ndata: tick 0\n"));
        Assert.That(log.ResponseBody, Does.EndWith("…").And.Length.LessThanOrEqualTo(10_000));
    }

    private static async IAsyncEnumerable<string> Ticks(int count, [EnumeratorCancellation] CancellationToken ct)
    {
        for (var i = 0; i < count; i++)
        {
            ct.ThrowIfCancellationRequested();
            yield return $"tick {i}";
            if (i % 500 == 0)
            {
                await Task.Yield();
            }
        }
    }

    [TestCase(true)]
    [TestCase(false)]
    public async Task ResponseCompression_TheClientGetsGzip_TheRecordHoldsTheJsonOrSaysItIsCompressed(bool compressionAroundJobLog)
    {
        await using var web = await WebFixture.StartAsync(
            app =>
            {
                if (compressionAroundJobLog)
                {
                    app.UseResponseCompression();
                }

                app.UseJobLogRequests();
                if (!compressionAroundJobLog)
                {
                    app.UseResponseCompression();
                }

                app.MapGet("/orders", () => Results.Text(OrdersJson, "application/json"));
            },
            services => services.AddResponseCompression(),
            Server.Kestrel);

        using var request = new HttpRequestMessage(HttpMethod.Get, "/orders");
        request.Headers.AcceptEncoding.Add(new StringWithQualityHeaderValue("gzip"));
        using var response = await web.Client.SendAsync(request);
        await using var gzip = new GZipStream(await response.Content.ReadAsStreamAsync(), CompressionMode.Decompress);

        Assert.That(response.Content.Headers.ContentEncoding, Is.EqualTo(new[] { "gzip" }));
        Assert.That(await new StreamReader(gzip).ReadToEndAsync(), Is.EqualTo(OrdersJson), "a valid gzip body");
        var log = await web.CompletedInputAsync("/orders");
        Assert.That(log.ResponseHeaders, Does.Contain("\"Content-Encoding\":\"gzip\""));
        Assert.That(
            log.ResponseBody,
            compressionAroundJobLog
                ? Does.StartWith("{\"orders\":[{\"id\":0,\"customer\":\"customer 0\"}")   // what the endpoint wrote, before compression
                : Does.Match(@"^\[gzip body: \d+ bytes\]$"));                             // JobLog sees the compressed bytes: it says so
    }

    [TestCase("status code selector")]
    [TestCase("IExceptionHandler")]
    public async Task ExceptionHandler_AroundJobLog_MappingTheExceptionTo404_RecordsThe404WithTheException(string how)
    {
        await using var web = await StartOrdersNotFoundAsync(app =>
        {
            if (how == "status code selector")
            {
                app.UseExceptionHandler(new ExceptionHandlerOptions { StatusCodeSelector = e => e is KeyNotFoundException ? 404 : 500 });
            }
            else
            {
                app.UseExceptionHandler();
            }

            app.UseJobLogRequests();
        });

        using var response = await web.Client.GetAsync("/orders/7");

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
        var log = await web.CompletedInputAsync("/orders/7");
        Assert.That(log.ResponseCode, Is.EqualTo(404), "the status the client got");
        Assert.That(log.Status, Is.EqualTo(RequestLogStatus.Warning));
        Assert.That(log.ExceptionName, Is.EqualTo("System.Collections.Generic.KeyNotFoundException"));
        Assert.That(log.ErrorDescription, Does.Contain("no order 7"));
    }

    [Test]
    public async Task ExceptionHandler_AroundJobLog_NotHandlingTheException_RecordsThe500TheServerSent()
    {
        await using var web = await WebFixture.StartAsync(
            app =>
            {
                app.UseExceptionHandler();
                app.UseJobLogRequests();
                app.MapGet("/orders/{id}", IResult (int id) => throw new InvalidOperationException("ledger of orders offline"));
            },
            services => services.AddProblemDetails(),
            Server.Kestrel);

        using var response = await web.Client.GetAsync("/orders/8");

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.InternalServerError));
        Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo("application/problem+json"));
        var log = await web.CompletedInputAsync("/orders/8");
        Assert.That(log.ResponseCode, Is.EqualTo(500));
        Assert.That(log.Status, Is.EqualTo(RequestLogStatus.Error));
        Assert.That(log.ExceptionName, Is.EqualTo("System.InvalidOperationException"));
        Assert.That(log.ResponseHeaders, Does.Contain("application/problem+json"), "the headers of the answer the client got");
    }

    [Test]
    public async Task ExceptionHandlerPath_AroundJobLog_IsOneRecordWithTheExceptionAndTheErrorPage()
    {
        await using var web = await WebFixture.StartAsync(
            app =>
            {
                app.UseExceptionHandler("/error");
                app.UseJobLogRequests();
                app.Map("/error", () => Results.Problem("the order service failed", statusCode: 503));
                app.MapGet("/orders/{id}", IResult (int id) => throw new TimeoutException("order store timed out"));
            },
            services => services.AddProblemDetails(),
            Server.Kestrel);

        using var response = await web.Client.GetAsync("/orders/9");

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.ServiceUnavailable));
        var log = await web.CompletedInputAsync("/");
        Assert.That(log.Path, Is.EqualTo("/orders/9"), "the request the client sent, re-executed by the handler");
        Assert.That(log.ResponseCode, Is.EqualTo(503));
        Assert.That(log.ExceptionName, Is.EqualTo("System.TimeoutException"));
        Assert.That(log.ResponseBody, Does.Contain("the order service failed"));
    }

    [Test]
    public async Task StatusCodePagesReExecute_AroundJobLog_IsOneRecord()
    {
        await using var web = await WebFixture.StartAsync(
            app =>
            {
                app.UseStatusCodePagesWithReExecute("/status/{0}");
                app.UseJobLogRequests();
                app.Map("/status/{code}", (int code) => Results.Text($"status page {code}"));
                app.MapGet("/orders/{id}", (int id) => Results.NotFound());
            },
            server: Server.Kestrel);

        using var response = await web.Client.GetAsync("/orders/10");

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
        Assert.That(await response.Content.ReadAsStringAsync(), Is.EqualTo("status page 404"));
        var log = await web.CompletedInputAsync("/");
        Assert.That(log.Path, Is.EqualTo("/orders/10"));
        Assert.That(log.ResponseCode, Is.EqualTo(404));
    }

    [Test]
    public async Task StatusCodePages_AroundJobLog_TheRecordHoldsThePageTheClientGot()
    {
        // The page is written after JobLog completed the record (the response had not started): it was not in the record.
        await using var web = await WebFixture.StartAsync(
            app =>
            {
                app.UseStatusCodePages();
                app.UseJobLogRequests();
                app.MapGet("/orders/{id}", (int id) => Results.NotFound());
            },
            server: Server.Kestrel);

        using var response = await web.Client.GetAsync("/orders/12");
        var page = await response.Content.ReadAsStringAsync();

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
        Assert.That(page, Does.StartWith("Status Code: 404; Not Found"), "ASP.NET Core pads it to 512 bytes");
        InputRequestLog? log = null;
        await LedgerHost.EventuallyAsync(async () =>
        {
            log = await web.CompletedInputAsync("/orders/12");
            return log.ResponseBody == page;
        }, because: "the record holds the status code page");
        Assert.That(log!.ResponseCode, Is.EqualTo(404));
        Assert.That(log.ResponseHeaders, Does.Contain("text/plain"));
    }

    [Test]
    public async Task StatusCodePages_WrittenToTheBodyWriterWithoutAFlush_AroundJobLog_ReachTheClientWhole()
    {
        // What a middleware around JobLog writes after it must reach the client as it would without JobLog: the server
        // flushes the body writer it knows at the end, not JobLog's.
        await using var web = await WebFixture.StartAsync(
            app =>
            {
                app.Use(async (context, next) =>
                {
                    await next(context);
                    if (context.Response.StatusCode == 404 && !context.Response.HasStarted)
                    {
                        context.Response.ContentType = "text/plain";
                        var bytes = System.Text.Encoding.UTF8.GetBytes("not here: " + context.Request.Path);
                        bytes.CopyTo(context.Response.BodyWriter.GetSpan(bytes.Length));
                        context.Response.BodyWriter.Advance(bytes.Length);
                    }
                });
                app.UseJobLogRequests();
                app.MapGet("/orders/{id}", (int id) => Results.NotFound());
            },
            server: Server.Kestrel);

        using var response = await web.Client.GetAsync("/orders/13");

        Assert.That(await response.Content.ReadAsStringAsync(), Is.EqualTo("not here: /orders/13"));
        InputRequestLog? log = null;
        await LedgerHost.EventuallyAsync(async () =>
        {
            log = await web.CompletedInputAsync("/orders/13");
            return log.ResponseBody is not null;
        }, because: "the record holds the page");
        Assert.That(log!.ResponseBody, Is.EqualTo("not here: /orders/13"));
    }

    [Test]
    public async Task Client_ClosingAStreamedResponse_WhoseEndpointCatchesTheCancellation_TheRecordSaysTheClientDisconnected()
    {
        await using var web = await WebFixture.StartAsync(
            app =>
            {
                app.UseJobLogRequests();
                app.MapGet("/feed", async (HttpContext context) =>
                {
                    // As endpoints stream and end quietly when the client goes away.
                    context.Response.ContentType = "text/plain";
                    try
                    {
                        while (true)
                        {
                            await context.Response.WriteAsync(new string('y', 4095) + "\n", context.RequestAborted);
                            await context.Response.Body.FlushAsync(context.RequestAborted);
                        }
                    }
                    catch (OperationCanceledException)
                    {
                    }
                });
            },
            server: Server.Kestrel);

        using (var response = await web.Client.GetAsync("/feed", HttpCompletionOption.ResponseHeadersRead))
        {
            var stream = await response.Content.ReadAsStreamAsync();
            await stream.ReadExactlyAsync(new byte[20_000]);
        }

        var log = await web.CompletedInputAsync("/feed");
        Assert.That((log.ResponseCode, log.Status), Is.EqualTo((200, RequestLogStatus.Info)), "a client going away is not the server's error");
        Assert.That(log.ErrorDescription, Is.EqualTo("The client disconnected before the response was complete."));
    }

    [Test]
    public async Task ExceptionHandler_InsideJobLog_RecordsTheHandledExceptionAndTheStatusTheClientGot()
    {
        await using var web = await StartOrdersNotFoundAsync(app =>
        {
            app.UseJobLogRequests();
            app.UseExceptionHandler();
        });

        using var response = await web.Client.GetAsync("/orders/11");

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
        var log = await web.CompletedInputAsync("/orders/11");
        Assert.That(log.ResponseCode, Is.EqualTo(404));
        Assert.That(log.ResponseBody, Does.Contain("no order 11"), "the problem details the handler wrote");
        Assert.That(log.ExceptionName, Is.EqualTo("System.Collections.Generic.KeyNotFoundException"));
    }

    /// <summary>An application whose <c>/orders/{id}</c> throws KeyNotFoundException, which <see cref="NotFoundHandler"/> answers 404.</summary>
    private static Task<WebFixture> StartOrdersNotFoundAsync(Action<WebApplication> middlewares) => WebFixture.StartAsync(
        app =>
        {
            middlewares(app);
            app.MapGet("/orders/{id}", IResult (int id) => throw new KeyNotFoundException($"no order {id}"));
        },
        services =>
        {
            services.AddProblemDetails();
            services.AddExceptionHandler<NotFoundHandler>();
        },
        Server.Kestrel);

    private sealed class NotFoundHandler(IProblemDetailsService problems) : IExceptionHandler
    {
        public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
        {
            if (exception is not KeyNotFoundException)
            {
                return false;
            }

            httpContext.Response.StatusCode = StatusCodes.Status404NotFound;
            return await problems.TryWriteAsync(new ProblemDetailsContext
            {
                HttpContext = httpContext,
                ProblemDetails = new ProblemDetails { Title = "Not found", Detail = exception.Message },
            });
        }
    }

    [TestCase("stream")]
    [TestCase("server-sent events")]
    public async Task Client_ClosingAStreamedResponse_TheRecordIsCompletedAndSaysTheClientDisconnected(string kind)
    {
        var warnings = new WarningCollector();
        await using var web = await WebFixture.StartAsync(
            app =>
            {
                app.UseJobLogRequests();
                app.MapGet("/feed", async (HttpContext context) =>
                {
                    // As endpoints stream: until the client goes away, which cancels RequestAborted.
                    context.Response.ContentType = "text/plain";
                    while (true)
                    {
                        await context.Response.WriteAsync(new string('y', 4095) + "\n", context.RequestAborted);
                        await context.Response.Body.FlushAsync(context.RequestAborted);
                    }
                });
                app.MapGet("/events", (CancellationToken ct) => TypedResults.ServerSentEvents(Ticks(int.MaxValue, ct)));
            },
            services => services.AddSingleton<ILoggerProvider>(warnings),
            Server.Kestrel);
        var path = kind == "stream" ? "/feed" : "/events";

        using (var response = await web.Client.GetAsync(path, HttpCompletionOption.ResponseHeadersRead))
        {
            var stream = await response.Content.ReadAsStreamAsync();
            await stream.ReadExactlyAsync(new byte[20_000]);
        }

        var log = await web.CompletedInputAsync(path);
        Assert.That(log.ResponseCode, Is.EqualTo(200), "the response the client was reading");
        Assert.That(log.Status, Is.EqualTo(RequestLogStatus.Info), "a client going away is not the server's error");
        Assert.That(log.ErrorDescription, Does.StartWith("The client disconnected before the response was complete."));
        Assert.That(log.ResponseBody, Does.EndWith("…"));
        Assert.That(warnings.Errors.Where(e => e.Contains("JobLog")), Is.Empty, "nothing logged as JobLog's own failure");
    }

    [Test]
    public async Task Client_CancellingAnUploadHalfSent_TheRecordIsCompletedWithWhatCameAndKestrelsUnexpectedEnd()
    {
        var running = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var web = await WebFixture.StartAsync(
            app =>
            {
                app.UseJobLogRequests();
                app.MapPost("/imports", async (HttpRequest request) =>
                {
                    // JobLog read the start of the body ahead before the endpoint ran.
                    running.TrySetResult();
                    return Results.Text($"read {(await new StreamReader(request.Body).ReadToEndAsync()).Length}");
                });
            },
            server: Server.Kestrel);
        using var cancel = new CancellationTokenSource();

        Assert.CatchAsync<OperationCanceledException>(async () =>
        {
            using var response = await web.Client.PostAsync("/imports", new HalfSentContent(running.Task, cancel), cancel.Token);
        });

        var log = await web.CompletedInputAsync("/imports");
        Assert.That(log.RequestBody, Is.EqualTo("{\"import\":7,\"lines\":[…"), "what came, marked cut");
        Assert.That(log.ResponseCode, Is.EqualTo(400), "Kestrel's answer to a body cut short");
        Assert.That(log.Status, Is.EqualTo(RequestLogStatus.Warning), "the client's fault, not the server's");
        Assert.That(log.ErrorDescription, Does.Contain("Unexpected end of request content."));
    }

    /// <summary>Declares 100,000 bytes, sends the first ones, then cancels the request once the endpoint runs.</summary>
    private sealed class HalfSentContent(Task endpointRunning, CancellationTokenSource cancel) : HttpContent
    {
        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            await stream.WriteAsync("{\"import\":7,\"lines\":["u8.ToArray());
            await stream.FlushAsync();
            await endpointRunning;
            await cancel.CancelAsync();
            await Task.Delay(Timeout.Infinite, cancel.Token);
        }

        protected override bool TryComputeLength(out long length)
        {
            length = 100_000;
            return true;
        }
    }

    [TestCase("/read")]
    [TestCase("/ignore")]
    public async Task RequestDecompression_AroundJobLog_RecordsTheWholeDecompressedBody_ReadByTheEndpointOrNot(string path)
    {
        var json = "{\"password\":\"hunter2\",\"lines\":\"" + new string('l', 5_000) + "\"}";
        await using var web = await WebFixture.StartAsync(
            app =>
            {
                app.UseRequestDecompression();
                app.UseJobLogRequests();
                app.MapPost("/read", async (HttpRequest request) => Results.Text($"read {(await new StreamReader(request.Body).ReadToEndAsync()).Length}"));
                app.MapPost("/ignore", () => Results.Text("ignored"));
            },
            services => services.AddRequestDecompression(),
            Server.Kestrel);
        var compressed = new MemoryStream();
        await using (var gzip = new GZipStream(compressed, CompressionLevel.Optimal, leaveOpen: true))
        {
            await gzip.WriteAsync(Encoding.UTF8.GetBytes(json));
        }

        var content = new ByteArrayContent(compressed.ToArray());
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        content.Headers.ContentEncoding.Add("gzip");
        using var response = await web.Client.PostAsync(path, content);

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        var log = await web.CompletedInputAsync(path);
        // The declared length is the compressed one (75 bytes): the body JobLog reads is the 5,000-character JSON.
        Assert.That(log.RequestBody, Is.EqualTo(json.Replace("hunter2", "[Filtered]")));
    }

    [Test]
    public async Task WebSocket_BehindJobLog_EchoesAndIsRecordedAs101()
    {
        await using var web = await WebFixture.StartAsync(
            app =>
            {
                app.UseJobLogRequests();
                app.UseWebSockets();
                app.Map("/echo", async (HttpContext context) =>
                {
                    using var socket = await context.WebSockets.AcceptWebSocketAsync();
                    var buffer = new byte[1024];
                    while (await socket.ReceiveAsync(buffer, CancellationToken.None) is { MessageType: not WebSocketMessageType.Close } received)
                    {
                        await socket.SendAsync(buffer.AsMemory(0, received.Count), received.MessageType, received.EndOfMessage, CancellationToken.None);
                    }

                    await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", CancellationToken.None);
                });
            },
            server: Server.Kestrel);
        using var socket = new ClientWebSocket();
        await socket.ConnectAsync(new Uri(new Uri(web.Client.BaseAddress!.ToString().Replace("http://", "ws://")), "/echo"), CancellationToken.None);

        await socket.SendAsync("order 12 shipped"u8.ToArray(), WebSocketMessageType.Text, true, CancellationToken.None);
        var buffer = new byte[100];
        var echoed = await socket.ReceiveAsync(buffer, CancellationToken.None);
        await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", CancellationToken.None);

        Assert.That(Encoding.UTF8.GetString(buffer, 0, echoed.Count), Is.EqualTo("order 12 shipped"));
        var log = await web.CompletedInputAsync("/echo");
        Assert.That(log.ResponseCode, Is.EqualTo(101));
        Assert.That(log.Status, Is.EqualTo(RequestLogStatus.Info));
        Assert.That(log.ResponseBody, Is.Null, "frames are not a response body");
    }

    [Test]
    public async Task OutputCacheHits_BehindJobLog_AreEachRecordedWithTheCachedBody()
    {
        var computed = 0;
        await using var web = await WebFixture.StartAsync(
            app =>
            {
                app.UseJobLogRequests();
                app.UseOutputCache();
                app.MapGet("/price", () => Results.Text($"price #{Interlocked.Increment(ref computed)}")).CacheOutput();
            },
            services => services.AddOutputCache(),
            Server.Kestrel);

        var answers = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            answers.Add(await web.Client.GetStringAsync("/price"));
        }

        Assert.That(answers, Is.EqualTo(new[] { "price #1", "price #1", "price #1" }));
        List<InputRequestLog> logs = [];
        await LedgerHost.EventuallyAsync(async () =>
        {
            await web.FlushAsync();
            logs = await web.InputsAsync();
            return logs.Count == 3 && logs.All(l => l.Status != RequestLogStatus.Incomplete);
        });
        Assert.That(logs.Select(l => l.ResponseBody), Is.All.EqualTo("price #1"));
    }

    [Test]
    public async Task Http2Cleartext_RequestAndResponseBodies_AreRecorded()
    {
        await using var web = await WebFixture.StartAsync(
            app =>
            {
                app.UseJobLogRequests();
                app.MapPost("/h2", async (HttpRequest request) => Results.Text($"{request.Protocol} {await new StreamReader(request.Body).ReadToEndAsync()}"));
            },
            services => services.Configure<KestrelServerOptions>(k => k.ConfigureEndpointDefaults(l => l.Protocols = HttpProtocols.Http2)),
            Server.Kestrel);

        using var request = new HttpRequestMessage(HttpMethod.Post, "/h2")
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = new StreamContent(new MemoryStream("{\"order\":13}"u8.ToArray())),
        };
        using var response = await web.Client.SendAsync(request);

        Assert.That(await response.Content.ReadAsStringAsync(), Is.EqualTo("HTTP/2 {\"order\":13}"));
        var log = await web.CompletedInputAsync("/h2");
        Assert.That(log.RequestBody, Is.EqualTo("{\"order\":13}"), "a body without a length, captured as the endpoint read it");
        Assert.That(log.ResponseBody, Is.EqualTo("HTTP/2 {\"order\":13}"));
    }
}
