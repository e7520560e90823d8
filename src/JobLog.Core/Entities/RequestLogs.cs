namespace JobLog;

/// <summary>Fields shared by inbound and outbound request logs.</summary>
public abstract class RequestLogBase
{
    /// <summary>Id.</summary>
    public Guid Id { get; set; }

    /// <summary>Host (with port).</summary>
    public string Host { get; set; } = "";

    /// <summary>HTTP method.</summary>
    public string Method { get; set; } = "";

    /// <summary>Path, bounded.</summary>
    public string Path { get; set; } = "";

    /// <summary>Query parameters as JSON, masked.</summary>
    public string? Queries { get; set; }

    /// <summary>HTTPS.</summary>
    public bool IsSecure { get; set; }

    /// <summary>Endpoint name or the slug given by the application.</summary>
    public string? Slug { get; set; }

    /// <summary>When the request started.</summary>
    public DateTime RequestTimestamp { get; set; }

    /// <summary>Headers as JSON, masked.</summary>
    public string? RequestHeaders { get; set; }

    /// <summary>Body, masked and bounded.</summary>
    public string? RequestBody { get; set; }

    /// <summary>When the response completed.</summary>
    public DateTime? ResponseTimestamp { get; set; }

    /// <summary>Status code.</summary>
    public int? ResponseCode { get; set; }

    /// <summary>Headers as JSON, masked.</summary>
    public string? ResponseHeaders { get; set; }

    /// <summary>Body, masked and bounded; only text-like content types.</summary>
    public string? ResponseBody { get; set; }

    /// <summary>Status.</summary>
    public RequestLogStatus Status { get; set; } = RequestLogStatus.Incomplete;

    /// <summary>Error description.</summary>
    public string? ErrorDescription { get; set; }

    /// <summary>Exception type name.</summary>
    public string? ExceptionName { get; set; }
}

/// <summary>One inbound HTTP request (seed <c>InputLoggedRequest</c>).</summary>
public sealed class InputRequestLog : RequestLogBase
{
    /// <summary>Authenticated user id.</summary>
    public string? UserId { get; set; }

    /// <summary>Client IP as ASP.NET Core resolved it.</summary>
    public string? Ip { get; set; }

    /// <summary>Kind of request.</summary>
    public InputRequestType Type { get; set; } = InputRequestType.Common;
}

/// <summary>One outbound HTTP request (seed <c>OutputLoggedRequest</c>).</summary>
public sealed class OutputRequestLog : RequestLogBase
{
    /// <summary>The inbound request during which this one was made.</summary>
    public Guid? InputRequestId { get; set; }

    /// <summary>Objects this request relates to.</summary>
    public List<OutputRequestRelatedObject> RelatedObjects { get; set; } = [];
}

/// <summary>Relates an outbound request to a command, a task run, or any application object.</summary>
public sealed class OutputRequestRelatedObject
{
    /// <summary>Id.</summary>
    public Guid Id { get; set; }

    /// <summary>The outbound request.</summary>
    public Guid OutputRequestId { get; set; }

    /// <summary>A command.</summary>
    public Guid? CommandLogId { get; set; }

    /// <summary>A task run.</summary>
    public Guid? TaskRunLogId { get; set; }

    /// <summary>Type name of an application object.</summary>
    public string? ContentType { get; set; }

    /// <summary>Key of an application object.</summary>
    public string? ObjectId { get; set; }
}
