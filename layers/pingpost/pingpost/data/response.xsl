<?xml version="1.0" encoding="UTF-8"?>
<!-- Shows a pingPostLead answer as a page, for people who post a form from a browser. -->
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:output method="html" encoding="UTF-8" indent="yes"/>
  <xsl:template match="/response">
    <html lang="en">
      <head>
        <meta charset="UTF-8"/>
        <title>Lead <xsl:value-of select="status"/></title>
        <style>
          body { font: 16px/1.5 system-ui, sans-serif; margin: 3rem auto; max-width: 36rem; color: #222; }
          .status { font-size: 1.6rem; font-weight: 600; }
          .Matched { color: #17663a; } .Unmatched { color: #8a5a00; } .Error { color: #a31515; }
          dl { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; }
          dt { color: #666; } code { font-size: .85rem; word-break: break-all; }
        </style>
      </head>
      <body>
        <p class="status {status}" id="status"><xsl:value-of select="status"/></p>
        <dl>
          <xsl:if test="lead_id"><dt>Lead ID</dt><dd id="lead_id"><xsl:value-of select="lead_id"/></dd></xsl:if>
          <xsl:if test="price"><dt>Price</dt><dd id="price"><xsl:value-of select="price"/></dd></xsl:if>
          <xsl:if test="matches"><dt>Matches</dt><dd id="matches"><xsl:value-of select="matches"/></dd></xsl:if>
          <xsl:if test="error"><dt>Error</dt><dd id="error"><xsl:value-of select="error"/></dd></xsl:if>
          <xsl:for-each select="hashes/hash">
            <dt><xsl:value-of select="@ValueType"/> (<xsl:value-of select="@HashType"/>)</dt>
            <dd><code><xsl:value-of select="."/></code></dd>
          </xsl:for-each>
        </dl>
      </body>
    </html>
  </xsl:template>
</xsl:stylesheet>
