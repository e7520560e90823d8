using System.Net.Sockets;
using System.Text;

namespace JobLog.Worker.Tests.Hostile40;

/// <summary>An HTTP/1.x exchange over a bare TCP socket: what HttpClient refuses to send, and what Kestrel answers to it.</summary>
internal static class RawSocket
{
    /// <summary>How long a probe waits for an answer at most: a bound on a hang, never a measure (load 30 is normal).</summary>
    public static readonly TimeSpan Bound = TimeSpan.FromSeconds(50);

    public static byte[] Ascii(string text) => Encoding.Latin1.GetBytes(text);

    /// <summary>Sends <paramref name="request"/> and reads every byte the server sends until it closes the connection.</summary>
    public static async Task<string> ExchangeAsync(string url, byte[] request, bool halfClose = false)
    {
        var uri = new Uri(url);
        using var tcp = new TcpClient();
        using var bound = new CancellationTokenSource(Bound);
        await tcp.ConnectAsync(uri.Host, uri.Port, bound.Token);
        var stream = tcp.GetStream();
        try
        {
            await stream.WriteAsync(request, bound.Token);
            if (halfClose)
            {
                tcp.Client.Shutdown(SocketShutdown.Send);
            }
        }
        catch (IOException)
        {
            // The server may answer and close before it read the whole request (a header past its limit): read its answer.
        }

        return await ReadToCloseAsync(stream, bound.Token);
    }

    public static async Task<string> ReadToCloseAsync(Stream stream, CancellationToken cancellationToken)
    {
        using var received = new MemoryStream();
        var buffer = new byte[64 * 1024];
        while (true)
        {
            int read;
            try
            {
                read = await stream.ReadAsync(buffer, cancellationToken);
            }
            catch (IOException)
            {
                break;
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException($"No end of the answer within {Bound.TotalSeconds} s; so far: {Encoding.Latin1.GetString(received.ToArray())}");
            }

            if (read == 0)
            {
                break;
            }

            received.Write(buffer, 0, read);
        }

        return Encoding.Latin1.GetString(received.ToArray());
    }

    /// <summary>The status codes of every response in <paramref name="answer"/> (several when requests were pipelined).</summary>
    public static List<int> Statuses(string answer) =>
        [.. System.Text.RegularExpressions.Regex.Matches(answer, @"(?m)^HTTP/1\.[01] (\d{3}) ").Select(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture))];
}
