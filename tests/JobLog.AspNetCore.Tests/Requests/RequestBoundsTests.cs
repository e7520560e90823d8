using System.Net;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Metadata;
using NUnit.Framework;

namespace JobLog.AspNetCore.Tests.Requests;

/// <summary>Bodies, headers and paths that do not fit: served normally, stored bounded and marked (on Kestrel).</summary>
public class RequestBoundsTests
{
    private WebFixture _web = null!;

    [OneTimeSetUp]
    public async Task StartAsync() => _web = await WebFixture.StartAsync(
        app =>
        {
            app.UseJobLogRequests();
            // Counts what the endpoint reads, so each test proves the body reached it whole.
            app.MapPost("/count/{name}", async (HttpRequest request) =>
            {
                var buffer = new byte[81920];
                long total = 0;
                int read;
                while ((read = await request.Body.ReadAsync(buffer)) > 0)
                {
                    total += read;
                }

                return Results.Text(total.ToString(System.Globalization.CultureInfo.InvariantCulture));
            }).WithMetadata(new NoRequestSizeLimit());
            app.MapPost("/limited/{name}", async (HttpRequest request) =>
            {
                await request.Body.CopyToAsync(Stream.Null);
                return Results.Ok();
            });
            app.MapGet("/echo-header", (HttpRequest request) => request.Headers["X-Big"].ToString().Length);
            app.MapGet("/deep/{**rest}", (string rest) => rest.Length);
        },
        server: Server.Kestrel);

    [OneTimeTearDown]
    public async Task StopAsync() => await _web.DisposeAsync();

    [Test]
    public async Task BinaryBody_IsStoredAsAMarkerWithItsLength()
    {
        var bytes = Enumerable.Range(0, 5000).Select(i => (byte)(i * 7 % 256)).ToArray();

        var served = await PostAsync("/count/binary", new ByteArrayContent(bytes));

        Assert.That(served, Is.EqualTo("5000"));
        var log = await _web.CompletedInputAsync("/count/binary");
        Assert.That(log.RequestBody, Is.EqualTo("[binary body: 5000 bytes]"));
    }

    [Test]
    public async Task NonUtf8Body_IsStoredAsAMarkerNotAsMangledText()
    {
        var latin1 = Encoding.Latin1.GetBytes("Příliš žluťoučký kůň: café crème brûlée");

        var served = await PostAsync("/count/latin1", new ByteArrayContent(latin1));

        Assert.That(served, Is.EqualTo(latin1.Length.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        var log = await _web.CompletedInputAsync("/count/latin1");
        Assert.That(log.RequestBody, Is.EqualTo($"[binary body: {latin1.Length} bytes]"));
    }

    [Test]
    public async Task Upload50Mb_IsServedWholeAndStoredBounded()
    {
        const long size = 50L * 1024 * 1024;
        var content = new StreamContent(new GeneratedStream(size, (byte)'a'));
        content.Headers.ContentLength = size;
        content.Headers.ContentType = new("text/plain");

        var served = await PostAsync("/count/upload", content);

        Assert.That(served, Is.EqualTo(size.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        var log = await _web.CompletedInputAsync("/count/upload");
        Assert.That(log.RequestBody, Has.Length.EqualTo(10_000));
        Assert.That(log.RequestBody, Does.StartWith("aaaa").And.EndWith("…"));
    }

    [Test]
    public async Task Upload50MbWithPasswordFieldCutByTheCapture_HidesTheOpenValue()
    {
        const long size = 50L * 1024 * 1024;
        var prefix = Encoding.UTF8.GetBytes("{\"note\":\"x\",\"password\":\"");
        var content = new StreamContent(new GeneratedStream(size, (byte)'s', prefix));
        content.Headers.ContentLength = size;
        content.Headers.ContentType = new("application/json");

        var served = await PostAsync("/count/open-secret", content);

        Assert.That(served, Is.EqualTo(size.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        var log = await _web.CompletedInputAsync("/count/open-secret");
        Assert.That(log.RequestBody, Does.Not.Contain("sss"));
        Assert.That(log.RequestBody, Does.StartWith("{\"note\":\"x\",\"password\":\"[Filtered]"));
    }

    [Test]
    public async Task UploadOverTheServersLimit_IsStillRefusedWith413()
    {
        const long size = 31L * 1024 * 1024;
        var content = new StreamContent(new GeneratedStream(size, (byte)'a'));
        content.Headers.ContentLength = size;

        HttpStatusCode? status = null;
        try
        {
            using var response = await _web.Client.PostAsync("/limited/over", content);
            status = response.StatusCode;
        }
        catch (HttpRequestException)
        {
            // Kestrel may close the connection while the client is still sending: the upload was refused either way.
        }

        Assert.That(status, Is.Null.Or.EqualTo(HttpStatusCode.RequestEntityTooLarge));
        var log = await _web.CompletedInputAsync("/limited/over");
        Assert.That(log.ResponseCode, Is.EqualTo(413));
        Assert.That(log.ExceptionName, Does.Contain("BadHttpRequestException"));
    }

    [Test]
    public async Task Header64Kb_IsServedAndStoredBoundedAndMarked()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/echo-header");
        request.Headers.TryAddWithoutValidation("X-Big", new string('h', 64 * 1024));

        using var response = await _web.Client.SendAsync(request);

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(await response.Content.ReadAsStringAsync(), Is.EqualTo((64 * 1024).ToString(System.Globalization.CultureInfo.InvariantCulture)));
        var log = await _web.CompletedInputAsync("/echo-header");
        Assert.That(log.RequestHeaders!.Length, Is.LessThanOrEqualTo(10_000));
        Assert.That(log.RequestHeaders, Does.Contain("\"X-Big\":\"hhhh").And.Contain("…"));
    }

    [Test]
    public async Task Path10000Chars_IsServedAndStoredBoundedAndMarked()
    {
        var rest = new string('p', 10_000);

        using var response = await _web.Client.GetAsync("/deep/" + rest);

        Assert.That(await response.Content.ReadAsStringAsync(), Is.EqualTo("10000"));
        var log = await _web.CompletedInputAsync("/deep/");
        Assert.That(log.Path, Has.Length.EqualTo(2000));
        Assert.That(log.Path, Does.StartWith("/deep/pppp").And.EndWith("…"));
    }

    private async Task<string> PostAsync(string path, HttpContent content)
    {
        using var response = await _web.Client.PostAsync(path, content);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), path);
        return await response.Content.ReadAsStringAsync();
    }

    /// <summary>Kestrel refuses bodies over 30 MB unless the endpoint lifts the limit, as an upload endpoint would.</summary>
    private sealed class NoRequestSizeLimit : IRequestSizeLimitMetadata
    {
        public long? MaxRequestBodySize => null;
    }

    /// <summary>A body of <c>length</c> bytes produced on the fly (the test does not hold 50 MB either).</summary>
    private sealed class GeneratedStream(long length, byte fill, byte[]? prefix = null) : Stream
    {
        private long _position;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => length;

        public override long Position
        {
            get => _position;
            set => throw new NotSupportedException();
        }

        public override int Read(byte[] buffer, int offset, int count)
        {
            var n = (int)Math.Min(count, length - _position);
            for (var i = 0; i < n; i++)
            {
                var at = _position + i;
                buffer[offset + i] = prefix is not null && at < prefix.Length ? prefix[at] : fill;
            }

            _position += n;
            return n;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
