using System.Buffers.Text;
using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.DataProtection;

namespace JobLog.Internal;

/// <summary>
/// Signs the parent stamp of a message written to an outbox, so that only a stamp JobLog wrote for that very message
/// links its delivered task. The clear headers are anyone's: a consumer that copies the headers of what it consumes
/// onto what it publishes carries a sender's forged run id into the outbox, after JobLog's send filter ran. The signed
/// stamp is <c>{sealed key}.{run|request|MAC}</c>: an HMAC-SHA256 (cut to 16 bytes) over the run, the request and the
/// message id, with a random key of this process that travels sealed by ASP.NET Core Data Protection (where kept
/// messages' keys live), so another process with the same keys checks it. One Protect per process; a stamp costs one
/// HMAC; a check one HMAC and, once per writing process, an Unprotect. A sender cannot make a stamp (no key), and a
/// stamp copied from another message names another message id. One per application (a singleton of
/// <c>AddJobLog</c>), shared by every bus and mediator, so that one reads another's stamps with the key itself.
/// </summary>
internal sealed class ParentStampKey
{
    /// <summary>The header with the signed stamp.</summary>
    public const string Header = "JobLog-ParentStamp";

    /// <summary>The Data Protection purpose of the sealed keys.</summary>
    public const string Purpose = "JobLog.ParentStamp.v1";

    private const int MacBytes = 16;
    private const int SignedBytes = 32 + MacBytes;
    private const int MaxOpenedKeys = 64;

    /// <summary>What a text's MAC begins with (see <see cref="TextMac"/>).</summary>
    private static ReadOnlySpan<byte> TextDomain => "JobLog.SignedText.v1\0"u8;

    private readonly IDataProtector _protector;
    private readonly byte[] _key = RandomNumberGenerator.GetBytes(32);
    private readonly Lazy<string> _sealed;
    private readonly ConcurrentDictionary<string, byte[]> _opened = new(StringComparer.Ordinal);

    /// <summary>This thread's HMAC with this process's key (a reused hash costs a third of a one-shot one).</summary>
    [ThreadStatic]
    private static (ParentStampKey Owner, IncrementalHash Hash)? t_own;

    public ParentStampKey(IDataProtectionProvider provider, TimeProvider? time = null)
    {
        _protector = provider.CreateProtector(Purpose);
        SignFailures = new SteadyRate(time ?? TimeProvider.System, TimeSpan.FromSeconds(10));
        // PublicationOnly: a Protect that failed (the key ring unreadable for a while) is tried again at the next stamp,
        // where the default mode would throw its exception for the process's life.
        _sealed = new Lazy<string>(() => Base64Url.EncodeToString(_protector.Protect(_key)), LazyThreadSafetyMode.PublicationOnly);
    }

    /// <summary>
    /// Failures to sign (Data Protection cannot seal the key: every outbox write tries again while the key ring is down),
    /// reported at most once per 10 s with their count.
    /// </summary>
    public SteadyRate SignFailures { get; }

    /// <summary>The signed stamp of <paramref name="run"/> and <paramref name="request"/> on message <paramref name="messageId"/>.</summary>
    public string Sign(Guid? run, Guid? request, Guid messageId)
    {
        Span<byte> signed = stackalloc byte[SignedBytes];
        Mac(_key, run ?? Guid.Empty, request ?? Guid.Empty, messageId, signed);
        Span<char> encoded = stackalloc char[Base64Url.GetEncodedLength(SignedBytes)];
        Base64Url.EncodeToChars(signed, encoded);
        return string.Concat(_sealed.Value, ".", encoded);
    }

    /// <summary>
    /// The run and request of a stamp this or another process with the same keys signed for <paramref name="messageId"/>;
    /// nulls for anything else (a stamp of another message, a forged or cut one, one sealed with keys this process lacks).
    /// </summary>
    public (Guid? Run, Guid? Request) Check(string? stamp, Guid messageId)
    {
        var dot = stamp?.LastIndexOf('.') ?? -1;
        Span<byte> signed = stackalloc byte[SignedBytes];
        if (dot <= 0
            || !Base64Url.IsValid(stamp.AsSpan(dot + 1), out var length) || length != SignedBytes
            || Base64Url.DecodeFromChars(stamp.AsSpan(dot + 1), signed) != SignedBytes
            || Open(stamp.AsSpan(0, dot)) is not { } key)
        {
            return (null, null);
        }

        var run = new Guid(signed[..16]);
        var request = new Guid(signed[16..32]);
        Span<byte> expected = stackalloc byte[SignedBytes];
        Mac(key, run, request, messageId, expected);
        if (!CryptographicOperations.FixedTimeEquals(expected[32..], signed[32..]))
        {
            return (null, null);
        }

        return (run == Guid.Empty ? null : run, request == Guid.Empty ? null : request);
    }

    /// <summary>
    /// The signature of <paramref name="text"/> carried by message <paramref name="messageId"/>, <c>{sealed key}.{MAC}</c>:
    /// for values JobLog sets in clear headers and reads back in another process (a job's consumer and name).
    /// </summary>
    public string SignText(string text, Guid messageId)
    {
        Span<byte> mac = stackalloc byte[MacBytes];
        TextMac(_key, text, messageId, mac);
        return string.Concat(_sealed.Value, ".", Base64Url.EncodeToString(mac));
    }

    /// <summary>
    /// True when <paramref name="signature"/> is this or another process's (with the same keys) <see cref="SignText"/> of
    /// <paramref name="text"/> on message <paramref name="messageId"/>; false for anything else.
    /// </summary>
    public bool CheckText(string? signature, string text, Guid messageId)
    {
        var dot = signature?.LastIndexOf('.') ?? -1;
        Span<byte> mac = stackalloc byte[MacBytes];
        if (dot <= 0
            || !Base64Url.IsValid(signature.AsSpan(dot + 1), out var length) || length != MacBytes
            || Base64Url.DecodeFromChars(signature.AsSpan(dot + 1), mac) != MacBytes
            || Open(signature.AsSpan(0, dot)) is not { } key)
        {
            return false;
        }

        Span<byte> expected = stackalloc byte[MacBytes];
        TextMac(key, text, messageId, expected);
        return CryptographicOperations.FixedTimeEquals(expected, mac);
    }

    /// <summary>
    /// The MAC of a text on a message; its data begins with <see cref="TextDomain"/>, so it can never be taken for a
    /// parent stamp's (run, request, message id) or the other way round.
    /// </summary>
    private static void TextMac(byte[] key, string text, Guid messageId, Span<byte> mac)
    {
        var data = new byte[TextDomain.Length + 16 + Encoding.UTF8.GetByteCount(text)];
        TextDomain.CopyTo(data);
        messageId.TryWriteBytes(data.AsSpan(TextDomain.Length));
        Encoding.UTF8.GetBytes(text, data.AsSpan(TextDomain.Length + 16));
        Span<byte> full = stackalloc byte[HMACSHA256.HashSizeInBytes];
        HMACSHA256.HashData(key, data, full);
        full[..MacBytes].CopyTo(mac);
    }

    /// <summary>Writes run and request in the first 32 bytes of <paramref name="signed"/>, and their MAC with the message id after.</summary>
    private void Mac(byte[] key, Guid run, Guid request, Guid messageId, Span<byte> signed)
    {
        run.TryWriteBytes(signed);
        request.TryWriteBytes(signed[16..]);
        Span<byte> data = stackalloc byte[48];
        signed[..32].CopyTo(data);
        messageId.TryWriteBytes(data[32..]);
        Span<byte> mac = stackalloc byte[HMACSHA256.HashSizeInBytes];
        if (key == _key)
        {
            if (t_own is not { } own || own.Owner != this)
            {
                own = (this, IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, _key));
                t_own = own;
            }

            own.Hash.AppendData(data);
            own.Hash.GetHashAndReset(mac);
        }
        else
        {
            HMACSHA256.HashData(key, data, mac);
        }

        mac[..MacBytes].CopyTo(signed[32..]);
    }

    /// <summary>
    /// The key a sealed key holds: this process's own without Data Protection, another's if this process's Data Protection
    /// keys open it (opened keys are remembered, a bounded few).
    /// </summary>
    private byte[]? Open(ReadOnlySpan<char> sealedKey)
    {
        if (_sealed.IsValueCreated && sealedKey.SequenceEqual(_sealed.Value))
        {
            return _key;
        }

        if (_opened.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(sealedKey, out var key))
        {
            return key;
        }

        try
        {
            key = _protector.Unprotect(Base64Url.DecodeFromChars(sealedKey));
        }
        catch (Exception e) when (e is CryptographicException or FormatException)
        {
            return null;
        }

        if (key.Length != 32)
        {
            return null;
        }

        if (_opened.Count >= MaxOpenedKeys)
        {
            _opened.Clear();
        }

        _opened[sealedKey.ToString()] = key;
        return key;
    }
}
